"""Classification and regression metrics in numpy (no scikit-learn at run time).

Inputs are class indices and an N×K probability matrix, or real values.
"""

from __future__ import annotations

from typing import Any

import numpy as np


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


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    """accuracy, macro precision/recall/F1, per-class values, ROC-AUC, log loss, confusion matrix."""
    n_classes = len(classes)
    y_pred = probabilities.argmax(axis=1)
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
