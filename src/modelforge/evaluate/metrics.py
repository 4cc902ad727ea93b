"""Classification and regression metrics in numpy (no scikit-learn at run time).

Inputs are class indices and an N×K probability matrix, or real values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelforge.decision import (
    Decision,
    average_precision,
    binary_decision_metrics,
    calibration_outcome,
    expected_calibration_error,
)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def binary_roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties get average ranks)."""
    positives = y_true.astype(bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score), dtype=np.float64)
    # average ranks over runs of tied scores
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(score)]])
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[Any], decision: Decision | None = None
) -> dict[str, Any]:
    """accuracy, macro precision/recall/F1, per-class values, ROC-AUC, log loss, confusion matrix.

    Two classes add average precision, Brier score, ECE, flag rate, expected cost, recall at precision
    and precision at recall (`decision.binary_decision_metrics`). With a `decision` (the run's
    decision.json), `probabilities` (the model's) are first calibrated by it, with the ECE before that
    as `ece_uncalibrated`; the labels follow its rule; `threshold` records it and `at_0_5` holds the
    same label metrics with the 0.5 cut (the most probable class)."""
    uncalibrated = probabilities
    if decision is not None:
        probabilities = decision.calibrated(probabilities)
    y_pred = probabilities.argmax(axis=1) if decision is None else decision.choose(probabilities)
    metrics = label_metrics(y_true, y_pred, probabilities, classes)
    if decision is not None and decision.calibration:
        before = calibration_outcome(y_true, uncalibrated, decision.positive)
        after = calibration_outcome(y_true, probabilities, decision.positive)
        metrics["ece_uncalibrated"] = expected_calibration_error(*before)
        metrics["ece"] = expected_calibration_error(*after)  # top-class ECE for many classes
    if len(classes) == 2:
        positive = 1 if decision is None or decision.positive is None else decision.positive
        threshold = decision.threshold if decision is not None and decision.threshold is not None else 0.5
        cost = decision.cost if decision is not None else None
        metrics["threshold"] = threshold
        metrics["positive"] = {"class": str(classes[positive]), **metrics["per_class"][str(classes[positive])]}
        metrics.update(binary_decision_metrics(y_true, probabilities, positive, threshold, cost))
        if decision is not None and decision.threshold is not None:
            at_half = label_metrics(y_true, probabilities.argmax(axis=1), probabilities, classes)
            at_half.update(flag_rate=float((probabilities.argmax(axis=1) == positive).mean()))
            metrics["at_0_5"] = {k: v for k, v in at_half.items() if k not in ("classes", "n", "roc_auc", "log_loss")}
    return metrics


def label_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray, classes: list[Any]
) -> dict[str, Any]:
    """The metrics of predicted labels `y_pred` (and of the probabilities: ROC-AUC, log loss)."""
    n_classes = len(classes)
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros(n_classes), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(n_classes), where=denominator > 0)
    present = actual > 0
    clipped = np.clip(probabilities[np.arange(len(y_true)), y_true], 1e-15, 1.0)
    if n_classes == 2:
        roc_auc = binary_roc_auc(y_true, probabilities[:, 1])
    else:
        aucs = [binary_roc_auc((y_true == k).astype(int), probabilities[:, k]) for k in range(n_classes) if present[k]]
        roc_auc = float(np.nanmean(aucs)) if aucs else float("nan")
    return {
        "accuracy": float((y_pred == y_true).mean()),
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "f1": float(f1[present].mean()),
        "roc_auc": roc_auc,
        "log_loss": float(-np.log(clipped).mean()),
        "per_class": {
            str(label): {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(actual[k]),
            }
            for k, label in enumerate(classes)
        },
        "confusion_matrix": matrix.tolist(),
        "classes": list(classes),
        "n": len(y_true),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    error = y_pred - y_true
    mse = float(np.mean(error**2))
    variance = float(np.var(y_true))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(error))),
        "r2": float(1 - mse / variance) if variance > 0 else float("nan"),
        "n": len(y_true),
    }


def label_set_metrics(
    target: np.ndarray, probabilities: np.ndarray, classes: list[Any], decision: Any
) -> dict[str, Any]:
    """Multi-label: micro and macro precision/recall/F1, subset accuracy (every label of a row right),
    Hamming loss and per-label figures at the decision's thresholds; macro average precision; the same
    label metrics at 0.5 under `at_0_5` when the thresholds were tuned."""
    truth = np.asarray(target) > 0
    metrics = label_set_scores(truth, decision.choose(probabilities), classes)
    aps = [average_precision(truth[:, k], probabilities[:, k]) for k in range(len(classes)) if truth[:, k].any()]
    metrics["average_precision"] = float(np.mean(aps)) if aps else float("nan")
    metrics["thresholds"] = {str(c): float(t) for c, t in zip(classes, decision.thresholds, strict=True)}
    if decision.objective:
        at_half = label_set_scores(truth, probabilities >= 0.5, classes)
        metrics["at_0_5"] = {k: v for k, v in at_half.items() if k not in ("classes", "n")}
    return metrics


def label_set_scores(truth: np.ndarray, chosen: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    true_positive = (truth & chosen).sum(axis=0).astype(np.float64)
    predicted, actual = chosen.sum(axis=0), truth.sum(axis=0)
    precision = np.divide(true_positive, predicted, out=np.zeros(len(classes)), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros(len(classes)), where=actual > 0)
    f1 = np.divide(2 * true_positive, predicted + actual, out=np.zeros(len(classes)), where=predicted + actual > 0)
    micro_predicted, micro_actual, micro_hits = predicted.sum(), actual.sum(), true_positive.sum()
    present = actual > 0
    return {
        "micro_f1": float(2 * micro_hits / max(micro_predicted + micro_actual, 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "micro_precision": float(micro_hits / max(micro_predicted, 1)),
        "micro_recall": float(micro_hits / max(micro_actual, 1)),
        "subset_accuracy": float((truth == chosen).all(axis=1).mean()),
        "hamming_loss": float((truth != chosen).mean()),
        "per_label": {
            str(label): {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(actual[k]),
            }
            for k, label in enumerate(classes)
        },
        "classes": [str(c) for c in classes],
        "n": len(truth),
    }
