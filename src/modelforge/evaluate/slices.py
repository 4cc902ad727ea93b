"""Fairness slices: metrics per value of a column, and the gaps between groups.

For classification each group gets accuracy, macro F1, the selection rate (share of rows
predicted as the positive class) and the true positive rate (recall of the positive class).
The gaps across groups of one column are

- demographic parity difference: max − min selection rate,
- equal opportunity difference: max − min true positive rate,
- accuracy gap: max − min accuracy,

with the positive class being the second label for binary tasks and, for multiclass, the
class with the largest gap (one-vs-rest). Regression groups get RMSE, MAE and the mean
prediction; the gaps are max − min of each. A gap is flagged when it exceeds the threshold
(absolute for rates, relative to the overall value for regression errors). Groups smaller
than `min_group` rows are shown but left out of the gaps: their rates are mostly noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from modelforge.evaluate.metrics import classification_metrics, regression_metrics
from modelforge.tasks import predicts_labels

MISSING = "(missing)"


@dataclass
class SliceGroup:
    value: str
    n: int
    metrics: dict[str, float]


@dataclass
class SliceGap:
    column: str
    metric: str
    value: float
    high: str
    low: str
    flagged: bool
    detail: str = ""


@dataclass
class SliceReport:
    column: str
    task: str
    groups: list[SliceGroup] = field(default_factory=list)
    gaps: list[SliceGap] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "task": self.task,
            "groups": [{"value": g.value, "n": g.n, **g.metrics} for g in self.groups],
            "gaps": [vars(g) for g in self.gaps],
        }


def group_labels(values: pd.Series, max_values: int = 10, bins: int = 4) -> pd.Series:
    """One label per row: the value itself, or its quantile bin for a numeric column with many values."""
    values = values.reset_index(drop=True)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique(dropna=True) > max_values:
        binned = pd.qcut(values, q=bins, duplicates="drop")
        labels = binned.map(lambda interval: f"[{interval.left:.4g}, {interval.right:.4g}]")
        return labels.astype(object).where(values.notna(), MISSING).astype(str)
    return values.map(lambda v: MISSING if pd.isna(v) else _label(v)).astype(str)


def _label(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def classification_group_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[Any], positive: int, decision: Any = None
) -> dict[str, float]:
    """Metrics of one group: the headline ones plus per-class selection and true positive rates.

    With the run's `decision` (and `probabilities` already calibrated by it), labels follow its rule."""
    rule = replace(decision, calibration=None) if decision is not None else None
    base = classification_metrics(y_true, probabilities, classes, rule)
    predicted = probabilities.argmax(axis=1) if decision is None else decision.choose(probabilities)
    metrics = {"accuracy": base["accuracy"], "f1": base["f1"], "roc_auc": base["roc_auc"]}
    for k, label in enumerate(classes):
        actual = y_true == k
        metrics[f"selection_rate[{label}]"] = float((predicted == k).mean())
        metrics[f"true_positive_rate[{label}]"] = float((predicted[actual] == k).mean()) if actual.any() else np.nan
    metrics["selection_rate"] = metrics[f"selection_rate[{classes[positive]}]"]
    metrics["true_positive_rate"] = metrics[f"true_positive_rate[{classes[positive]}]"]
    return metrics


def regression_group_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    base = regression_metrics(y_true, predicted)
    return {
        "rmse": base["rmse"],
        "mae": base["mae"],
        "r2": base["r2"],
        "mean_prediction": float(predicted.mean()),
        "mean_target": float(y_true.mean()),
    }


def slice_metrics(
    column: str,
    values: pd.Series,
    y_true: np.ndarray,
    outputs: np.ndarray,
    task: str,
    classes: list[Any] | None = None,
    *,
    positive: Any = None,
    min_group: int = 10,
    threshold: float = 0.1,
    relative_threshold: float = 0.25,
    decision: Any = None,
) -> SliceReport:
    """Metrics per group of `values` (aligned with `y_true`/`outputs`) and the gaps between groups.

    `decision`: the run's (modelforge.decision), whose rule labels the rows; `outputs` are then the
    probabilities it calibrated.

    `outputs` are class probabilities (N×K) for classification, predicted values for regression;
    `y_true` are class indices or real values.
    """
    labels = group_labels(values)
    if len(labels) != len(y_true):
        raise ValueError(f"slice column {column!r}: {len(labels)} values for {len(y_true)} rows")
    report = SliceReport(column, task)
    positive_index = _positive_index(classes or [], positive) if predicts_labels(task) else 0
    for value in sorted(labels.unique(), key=_sort_key):
        mask = (labels == value).to_numpy()
        if predicts_labels(task):
            group = (y_true[mask], outputs[mask], list(classes or []), positive_index, decision)
            metrics = classification_group_metrics(*group)
        else:
            metrics = regression_group_metrics(y_true[mask], outputs[mask])
        report.groups.append(SliceGroup(value, int(mask.sum()), metrics))
    eligible = [g for g in report.groups if g.n >= min_group]
    if len(eligible) >= 2:
        if predicts_labels(task):
            report.gaps = _classification_gaps(column, eligible, list(classes or []), positive_index, threshold)
        else:
            overall = regression_group_metrics(y_true, outputs)
            report.gaps = _regression_gaps(column, eligible, overall, relative_threshold)
    return report


def _positive_index(classes: list[Any], positive: Any) -> int:
    if positive is None:
        return 1 if len(classes) == 2 else 0
    names = [str(c) for c in classes]
    if str(positive) not in names:
        from modelforge.errors import DataError

        raise DataError(f"--positive: {positive!r} is not a class; classes: {names}")
    return names.index(str(positive))


def _sort_key(value: str) -> tuple[int, float, str]:
    if value == MISSING:
        return (2, 0.0, value)
    text = value[1:].split(",")[0] if value.startswith("[") else value
    try:
        return (0, float(text), value)
    except ValueError:
        return (1, 0.0, value)


def _spread(groups: list[SliceGroup], key: str) -> tuple[float, str, str]:
    """max − min of a metric across groups (NaN values skipped), with the groups at each end."""
    scored = [(g.metrics[key], g.value) for g in groups if not np.isnan(g.metrics.get(key, np.nan))]
    if len(scored) < 2:
        return np.nan, "", ""
    high, low = max(scored), min(scored)
    return float(high[0] - low[0]), high[1], low[1]


def _classification_gaps(
    column: str, groups: list[SliceGroup], classes: list[Any], positive: int, threshold: float
) -> list[SliceGap]:
    gaps = []
    # binary: the positive class; multiclass: the class whose rate differs most (one-vs-rest)
    candidates = [classes[positive]] if len(classes) == 2 else classes
    for metric, prefix in (
        ("demographic_parity_difference", "selection_rate"),
        ("equal_opportunity_difference", "true_positive_rate"),
    ):
        best: tuple[float, str, str, Any] | None = None
        for label in candidates:
            value, high, low = _spread(groups, f"{prefix}[{label}]")
            if not np.isnan(value) and (best is None or value > best[0]):
                best = (value, high, low, label)
        if best is not None:
            value, high, low, label = best
            detail = f"{prefix.replace('_', ' ')} of class {label}: {high} vs {low}"
            gaps.append(SliceGap(column, metric, value, high, low, value > threshold, detail))
    value, high, low = _spread(groups, "accuracy")
    if not np.isnan(value):
        gaps.append(SliceGap(column, "accuracy_gap", value, high, low, value > threshold, f"accuracy: {high} vs {low}"))
    return gaps


def _regression_gaps(
    column: str, groups: list[SliceGroup], overall: dict[str, float], relative_threshold: float
) -> list[SliceGap]:
    gaps = []
    for key, scale_key in (("rmse", "rmse"), ("mae", "mae"), ("mean_prediction", "mean_target")):
        value, high, low = _spread(groups, key)
        if np.isnan(value):
            continue
        scale = abs(overall[scale_key]) or 1.0
        detail = f"{key}: {high} vs {low} ({value / scale:.0%} of the overall {scale_key})"
        gaps.append(SliceGap(column, f"{key}_gap", value, high, low, value / scale > relative_threshold, detail))
    return gaps


def largest_gaps(reports: list[SliceReport]) -> list[SliceGap]:
    """Every gap of every column, flagged first, then largest first."""
    gaps = [gap for report in reports for gap in report.gaps]
    return sorted(gaps, key=lambda g: (not g.flagged, -g.value))
