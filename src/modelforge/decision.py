"""Decisions for classifiers: calibrated probabilities, a threshold tuned on validation, and their metrics.

A classification run with a `decision:` or `calibrate:` section saves `decision.json` beside its
weights (`Decision.to_json`): the calibration that maps the model's probabilities to calibrated ones
(temperature, or isotonic breakpoints), and for a binary task the threshold on the calibrated
probability of the positive class — a row is flagged positive when that probability is ≥ the
threshold. `predict`, `serve`, `evaluate` and the ONNX bundle read it from there.

Plain numpy (no scikit-learn at run time): the precision–recall curve is scikit-learn's algorithm
(one point per distinct score), isotonic regression is pool-adjacent-violators, and temperature
scaling is a one-dimensional search of the validation log-loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelforge.errors import ModelforgeError

DECISION_FILE = "decision.json"
ECE_BINS = 10
_TINY = np.finfo(np.float64).tiny


class DecisionError(ModelforgeError):
    """A decision target cannot be met, or a decision asked of data that cannot give one."""


# ----------------------------------------------------------------------------- curves and metrics
@dataclass(frozen=True)
class ThresholdCurve:
    """Counts at every candidate threshold (descending): a row is flagged when its score is ≥ it.

    The first candidate lies above every score (flag nothing); then one per distinct score."""

    thresholds: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    positives: int
    rows: int

    @property
    def flagged(self) -> np.ndarray:
        return self.true_positives + self.false_positives

    @property
    def precision(self) -> np.ndarray:
        flagged = self.flagged
        # nothing flagged: precision 1 by convention (no false alarm), as scikit-learn's curve ends
        return np.divide(self.true_positives, flagged, out=np.ones(len(flagged)), where=flagged > 0)

    @property
    def recall(self) -> np.ndarray:
        return self.true_positives / max(self.positives, 1)

    @property
    def flag_rate(self) -> np.ndarray:
        return self.flagged / max(self.rows, 1)

    @property
    def f1(self) -> np.ndarray:
        denominator = self.flagged + self.positives
        return np.divide(2 * self.true_positives, denominator, out=np.zeros(len(denominator)), where=denominator > 0)

    def cost(self, false_positive: float, false_negative: float) -> np.ndarray:
        """Expected cost per row at each threshold."""
        misses = self.positives - self.true_positives
        return (false_positive * self.false_positives + false_negative * misses) / max(self.rows, 1)


def threshold_curve(positive: np.ndarray, score: np.ndarray) -> ThresholdCurve:
    """The curve of `score` against the 0/1 outcome `positive` (see ThresholdCurve)."""
    positive = np.asarray(positive).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    ranked, hits = score[order], positive[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1] if len(ranked) else np.array([], int)
    true_positives = np.cumsum(hits)[last_of_each]
    false_positives = last_of_each + 1 - true_positives
    above = np.nextafter(ranked[0], np.inf) if len(ranked) else 1.0
    return ThresholdCurve(
        thresholds=np.r_[above, ranked[last_of_each]],
        true_positives=np.r_[0, true_positives].astype(np.int64),
        false_positives=np.r_[0, false_positives].astype(np.int64),
        positives=int(positive.sum()),
        rows=len(score),
    )


def average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision–recall curve as scikit-learn's `average_precision_score` computes it."""
    curve = threshold_curve(positive, score)
    if curve.positives == 0:
        return float("nan")
    return float(np.sum(np.diff(curve.recall) * curve.precision[1:]))


def brier_score(positive: np.ndarray, probability: np.ndarray) -> float:
    return float(np.mean((np.asarray(probability, dtype=np.float64) - np.asarray(positive, dtype=np.float64)) ** 2))


def reliability_bins(outcome: np.ndarray, probability: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Equal-width bins of `probability`: each non-empty one's mean probability, observed rate and row count."""
    probability = np.asarray(probability, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    index = np.minimum((probability * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            rows.append(
                {
                    "predicted": float(probability[inside].mean()),
                    "observed": float(outcome[inside].mean()),
                    "rows": int(inside.sum()),
                }
            )
    return rows


def expected_calibration_error(outcome: np.ndarray, probability: np.ndarray, bins: int = ECE_BINS) -> float:
    """Row-weighted mean gap between predicted probability and observed rate over equal-width bins."""
    table = reliability_bins(outcome, probability, bins)
    total = sum(row["rows"] for row in table)
    if total == 0:
        return float("nan")
    return float(sum(row["rows"] * abs(row["predicted"] - row["observed"]) for row in table) / total)


def calibration_outcome(target: np.ndarray, probabilities: np.ndarray, positive: int | None) -> tuple[Any, Any]:
    """What ECE and the reliability plot compare: the positive class's probability and outcome for a
    binary task (`positive` its index), else the top class's probability and whether it was right."""
    if positive is not None:
        return (target == positive).astype(np.float64), probabilities[:, positive]
    return (probabilities.argmax(axis=1) == target).astype(np.float64), probabilities.max(axis=1)


def recall_at_precision(curve: ThresholdCurve, precision: float) -> float:
    """Highest recall among thresholds whose precision reaches `precision` (0 when none does)."""
    reached = curve.precision >= precision
    return float(curve.recall[reached].max()) if reached.any() else 0.0


def precision_at_recall(curve: ThresholdCurve, recall: float) -> float:
    """Highest precision among thresholds whose recall reaches `recall`."""
    reached = curve.recall >= recall
    return float(curve.precision[reached].max()) if reached.any() else 0.0


# ----------------------------------------------------------------------------- calibration
def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _TINY, 1.0))


def scale_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the same as dividing the model's logits by T."""
    scaled = _log_probabilities(probabilities) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def fit_temperature(target: np.ndarray, probabilities: np.ndarray) -> float:
    """The T > 0 that minimizes the log-loss of `scale_temperature(probabilities, T)` (golden-section
    search on log T; the loss is unimodal in it)."""
    rows = np.arange(len(target))

    def log_loss(log_t: float) -> float:
        return float(-np.log(np.clip(scale_temperature(probabilities, math.exp(log_t))[rows, target], _TINY, 1)).mean())

    low, high = math.log(0.02), math.log(50.0)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if log_loss(a) <= log_loss(b):
            high = b
        else:
            low = a
    return math.exp((low + high) / 2)


def fit_isotonic(outcome: np.ndarray, probability: np.ndarray) -> tuple[list[float], list[float]]:
    """Non-decreasing map from probability to observed rate (pool adjacent violators), as breakpoints
    (x, y) that `np.interp` applies: linear between them, flat outside (scikit-learn's
    IsotonicRegression with out_of_bounds='clip' gives the same)."""
    order = np.argsort(probability, kind="mergesort")
    x = np.asarray(probability, dtype=np.float64)[order]
    y = np.asarray(outcome, dtype=np.float64)[order]
    # equal x values are one point (their mean outcome), as scikit-learn pools ties
    unique_x, start = np.unique(x, return_index=True)
    sums, counts = np.add.reduceat(y, start), np.diff(np.r_[start, len(x)])
    blocks: list[list[float]] = []  # [sum, count, first x index, last x index]
    for i in range(len(unique_x)):
        blocks.append([float(sums[i]), float(counts[i]), i, i])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, c, _, last = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][3] = last
    xs, ys = [], []
    for s, c, first, last in blocks:
        for i in sorted({int(first), int(last)}):  # a block's ends carry its value
            xs.append(float(unique_x[i]))
            ys.append(s / c)
    return xs, ys


# ----------------------------------------------------------------------------- the saved decision
@dataclass(frozen=True)
class Decision:
    """What `decision.json` holds; see the module docstring. `threshold` is None for a run that is
    calibrated only (the most probable class wins)."""

    classes: list[Any]
    positive: int | None = None  # index of the positive class (binary tasks)
    threshold: float | None = None
    objective: dict[str, Any] | None = None
    cost: dict[str, float] | None = None
    calibration: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None

    def calibrated(self, probabilities: np.ndarray) -> np.ndarray:
        """The model's N×K probabilities mapped through the saved calibration (unchanged without one)."""
        method = (self.calibration or {}).get("method")
        if method == "temperature":
            return scale_temperature(probabilities, float(self.calibration["temperature"]))  # type: ignore[index]
        if method == "isotonic":
            assert self.positive is not None, "isotonic calibration is binary"
            calibration: dict[str, Any] = self.calibration  # type: ignore[assignment]
            mapped = np.interp(probabilities[:, self.positive], calibration["x"], calibration["y"])
            result = np.empty_like(probabilities, dtype=np.float64)
            result[:, self.positive] = mapped
            result[:, 1 - self.positive] = 1 - mapped
            return result
        return probabilities

    def choose(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Class index per row: the positive class where its probability is ≥ the threshold (`threshold`
        overrides the saved one), else the most probable class."""
        threshold = self.threshold if threshold is None else threshold
        if threshold is None or self.positive is None:
            return probabilities.argmax(axis=1)  # type: ignore[no-any-return]
        flagged = probabilities[:, self.positive] >= threshold
        return np.where(flagged, self.positive, 1 - self.positive)

    def tuned(self) -> bool:
        """Whether the run decides otherwise than by the most probable class (a threshold or a calibration)."""
        return self.threshold is not None or bool(self.calibration)

    def rule(self) -> str:
        """The decision rule in one sentence (the model card states it)."""
        parts = []
        if self.threshold is not None and self.positive is not None:
            label = self.classes[self.positive]
            goal = ", ".join(f"{k} {v}" for k, v in (self.objective or {}).items())
            parts.append(
                f"predict {label} when P({label}) ≥ {self.threshold:.4g}, else {self.classes[1 - self.positive]} "
                f"(threshold chosen on the validation split for {goal})"
            )
        method = (self.calibration or {}).get("method")
        if method:
            parts.append(f"probabilities calibrated on the validation split ({method})")
        return "; ".join(parts) or "the most probable class"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "classes": [str(c) if not isinstance(c, int | float) else c for c in self.classes],
            "positive": None if self.positive is None else self.classes[self.positive],
            "positive_index": self.positive,
            "threshold": self.threshold,
            "rule": self.rule(),
            "objective": self.objective,
            "cost": self.cost,
            "calibration": self.calibration,
            "validation": self.validation,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], classes: list[Any]) -> Decision:
        return cls(
            classes=list(classes),
            positive=data.get("positive_index"),
            threshold=data.get("threshold"),
            objective=data.get("objective"),
            cost=data.get("cost"),
            calibration=data.get("calibration"),
            validation=data.get("validation"),
        )


def binary_decision_metrics(
    target: np.ndarray, probabilities: np.ndarray, positive: int, threshold: float, cost: dict[str, float] | None
) -> dict[str, Any]:
    """The ranking, calibration and decision metrics of a binary task's calibrated probabilities."""
    outcome = (np.asarray(target) == positive).astype(np.float64)
    score = probabilities[:, positive]
    curve = threshold_curve(outcome, score)
    flagged = score >= threshold
    unit = cost or {"false_positive": 1.0, "false_negative": 1.0}
    false_positive = float((flagged & (outcome == 0)).sum())
    false_negative = float((~flagged & (outcome == 1)).sum())
    rows = max(len(outcome), 1)
    return {
        "average_precision": average_precision(outcome, score),
        "brier": brier_score(outcome, score),
        "ece": expected_calibration_error(outcome, score),
        "flag_rate": float(flagged.mean()) if len(flagged) else 0.0,
        "expected_cost": (unit["false_positive"] * false_positive + unit["false_negative"] * false_negative) / rows,
        "cost": dict(unit),
        "recall_at_precision": {f"{p:g}": recall_at_precision(curve, p) for p in (0.5, 0.8, 0.9)},
        "precision_at_recall": {f"{r:g}": precision_at_recall(curve, r) for r in (0.5, 0.8, 0.9)},
    }


# ----------------------------------------------------------------------------- tuning the threshold
def tune_threshold(outcome: np.ndarray, score: np.ndarray, objective: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """The threshold that meets `objective` on these (validation) rows, and the figures it reaches there.

    `objective` is one of {optimize: f1}, {recall_at_precision: P}, {precision_at_recall: R},
    {max_flag_rate: F}, {cost: {false_positive: a, false_negative: b}}. DecisionError (one line, with
    the best reachable value) when it cannot be met."""
    curve = threshold_curve(outcome, score)
    if curve.positives == 0 or curve.positives == curve.rows:
        raise DecisionError(
            f"decision: the validation split has {curve.positives} positive rows of {curve.rows}; "
            "tuning a threshold needs both classes there (more data or a larger data.split.valid)"
        )
    ((name, goal),) = objective.items()
    best = OBJECTIVES[name](curve, goal)
    figures = {
        "precision": float(curve.precision[best]),
        "recall": float(curve.recall[best]),
        "f1": float(curve.f1[best]),
        "flag_rate": float(curve.flag_rate[best]),
        "rows": curve.rows,
        "positives": curve.positives,
    }
    if name == "cost":
        figures["expected_cost"] = float(curve.cost(goal["false_positive"], goal["false_negative"])[best])
    return float(curve.thresholds[best]), figures


# Each objective picks an index of the curve. Among equals np.argmax takes the first, the highest
# threshold: the one that flags fewest rows. Index 0 flags nothing, which is no decision.
def _best_f1(curve: ThresholdCurve, goal: str) -> int:
    return int(np.argmax(curve.f1))


def _best_recall_at_precision(curve: ThresholdCurve, goal: float) -> int:
    met = curve.precision >= goal
    met[0] = False
    if not met.any():
        raise DecisionError(
            f"decision.recall_at_precision: precision {goal:g} is not reached on the validation split "
            f"(best reachable: {float(curve.precision[1:].max()):.4f}); lower it"
        )
    return int(np.argmax(np.where(met, curve.recall, -1.0)))


def _best_precision_at_recall(curve: ThresholdCurve, goal: float) -> int:
    met = curve.recall >= goal  # always met by flagging every row
    return int(np.argmax(np.where(met, curve.precision, -1.0)))


def _best_recall_within_flag_rate(curve: ThresholdCurve, goal: float) -> int:
    met = curve.flag_rate <= goal
    met[0] = False
    if not met.any():
        fewest = int(curve.flagged[1])
        raise DecisionError(
            f"decision.max_flag_rate: {goal:g} cannot be met on the validation split (the fewest rows a "
            f"threshold flags there are {fewest} of {curve.rows}, a rate of {fewest / curve.rows:.4f}); raise it"
        )
    return int(np.argmax(np.where(met, curve.recall, -1.0)))


def _lowest_cost(curve: ThresholdCurve, goal: dict[str, float]) -> int:
    return int(np.argmin(curve.cost(goal["false_positive"], goal["false_negative"])))


OBJECTIVES: dict[str, Callable[[ThresholdCurve, Any], int]] = {
    "optimize": _best_f1,
    "recall_at_precision": _best_recall_at_precision,
    "precision_at_recall": _best_precision_at_recall,
    "max_flag_rate": _best_recall_within_flag_rate,
    "cost": _lowest_cost,
}


def positive_index(classes: list[Any], positive: str | None) -> int:
    """Index of the positive class: the one named (as text), else the second in sorted order."""
    if positive is None:
        return 1
    names = [str(c) for c in classes]
    if positive not in names:
        raise DecisionError(f"decision.positive: {positive!r} is not a class of the target ({', '.join(names)})")
    return names.index(positive)


def fit_decision(
    target: np.ndarray,
    probabilities: np.ndarray,
    classes: list[Any],
    objective: dict[str, Any] | None,
    calibrate: str | None,
    positive: str | None = None,
) -> Decision:
    """Calibration and threshold fitted on validation rows (`target` class indices, the model's N×K
    probabilities); DecisionError when the objective cannot be met there."""
    binary = len(classes) == 2
    pos = positive_index(classes, positive) if binary else None
    outcome, probability = calibration_outcome(target, probabilities, pos)
    validation: dict[str, Any] = {"rows": len(target), "ece_before": expected_calibration_error(outcome, probability)}
    calibration: dict[str, Any] | None = None
    if calibrate == "temperature":
        calibration = {"method": "temperature", "temperature": fit_temperature(target, probabilities)}
    elif calibrate == "isotonic":
        assert pos is not None, "isotonic calibration is binary (checked with the config)"
        x, y = fit_isotonic(outcome, probability)
        calibration = {"method": "isotonic", "x": x, "y": y}
    decision = Decision(classes=list(classes), positive=pos, calibration=calibration)
    calibrated = decision.calibrated(probabilities)
    validation["ece_after"] = expected_calibration_error(*calibration_outcome(target, calibrated, pos))
    if objective is None:
        return Decision(classes=list(classes), positive=pos, calibration=calibration, validation=validation)
    assert pos is not None, "a decision is binary (checked with the config)"
    threshold, figures = tune_threshold(target == pos, calibrated[:, pos], objective)
    cost = objective.get("cost")
    return Decision(
        classes=list(classes),
        positive=pos,
        threshold=threshold,
        objective=objective,
        cost=cost,
        calibration=calibration,
        validation={**validation, **figures},
    )


# ----------------------------------------------------------------------------- multi-label
@dataclass(frozen=True)
class LabelSetDecision:
    """Multi-label runs: one threshold per label on its own sigmoid probability (0.5 each without a
    `decision:` section); decision.json holds them as `thresholds`, in the order of `classes`."""

    classes: list[Any]
    thresholds: list[float]
    objective: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None  # none for multi-label; read by the shared callers

    def calibrated(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities

    def choose(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """N×K booleans: each label whose probability is ≥ its threshold (`threshold`: one for all)."""
        cut = np.asarray(self.thresholds if threshold is None else [threshold] * len(self.classes))
        return probabilities >= cut  # type: ignore[no-any-return]

    def tuned(self) -> bool:
        """Whether the thresholds were chosen on the validation split (else 0.5 each)."""
        return self.objective is not None

    def rule(self) -> str:
        goal = ", ".join(f"{k} {v}" for k, v in (self.objective or {}).items())
        cuts = ", ".join(f"{c} ≥ {t:.3g}" for c, t in zip(self.classes, self.thresholds, strict=True))
        chosen = f" (thresholds chosen per label on the validation split for {goal})" if goal else ""
        return f"predict every label whose probability passes its threshold: {cuts}{chosen}"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "kind": "label_set",
            "classes": [str(c) for c in self.classes],
            "thresholds": list(self.thresholds),
            "rule": self.rule(),
            "objective": self.objective,
            "validation": self.validation,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], classes: list[Any]) -> LabelSetDecision:
        return cls(list(classes), list(data["thresholds"]), data.get("objective"), data.get("validation"))


def fit_label_set_decision(
    target: np.ndarray, probabilities: np.ndarray, classes: list[Any], objective: dict[str, Any]
) -> LabelSetDecision:
    """One threshold per label, each tuned on the validation rows for `objective` as a binary decision
    (that label against the rest); DecisionError naming the label when one cannot be met."""
    thresholds, per_label = [], {}
    for k, label in enumerate(classes):
        try:
            threshold, figures = tune_threshold(target[:, k] > 0, probabilities[:, k], objective)
        except DecisionError as exc:
            raise DecisionError(f"label {label!r}: {exc}") from None
        thresholds.append(threshold)
        per_label[str(label)] = figures
    return LabelSetDecision(list(classes), thresholds, objective, {"per_label": per_label})
