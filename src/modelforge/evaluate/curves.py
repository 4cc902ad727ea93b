"""Threshold curves in numpy: ROC, precision-recall and the reliability (calibration) diagram; which logged
keys make learning curves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COUNT_SUFFIXES = ("_n", "_rows", "_tokens")  # how many rows a validation pass scored: not a score


def is_validation_metric(name: str) -> bool:
    """A per-epoch validation score worth a learning curve: `valid_*` / `val_*`, neither a loss nor a count."""
    return name.startswith(("valid_", "val_")) and not name.endswith("loss") and not name.endswith(COUNT_SUFFIXES)


@dataclass
class Curve:
    x: np.ndarray
    y: np.ndarray
    area: float


def _ranked(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score threshold, highest first."""
    order = np.argsort(-score, kind="mergesort")
    score, y_true = score[order], y_true[order].astype(bool)
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    true_positives = np.cumsum(y_true)[last_of_tie]
    false_positives = (last_of_tie + 1) - true_positives
    return true_positives.astype(np.float64), false_positives.astype(np.float64)


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> Curve:
    """False positive rate (x) vs true positive rate (y); area by the trapezoid rule."""
    positives, negatives = float(y_true.sum()), float(len(y_true) - y_true.sum())
    if positives == 0 or negatives == 0:
        return Curve(np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan"))
    tp, fp = _ranked(y_true, score)
    x, y = np.r_[0.0, fp / negatives], np.r_[0.0, tp / positives]
    return Curve(x, y, float(np.trapezoid(y, x)))


def precision_recall_curve(y_true: np.ndarray, score: np.ndarray) -> Curve:
    """Recall (x) vs precision (y); area is average precision (step-wise, as scikit-learn)."""
    positives = float(y_true.sum())
    if positives == 0:
        return Curve(np.array([0.0, 1.0]), np.array([1.0, 0.0]), float("nan"))
    tp, fp = _ranked(y_true, score)
    precision, recall = tp / (tp + fp), tp / positives
    average = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return Curve(np.r_[0.0, recall], np.r_[1.0, precision], average)


@dataclass
class Reliability:
    confidence: np.ndarray  # mean predicted probability per bin
    accuracy: np.ndarray  # observed frequency per bin
    counts: np.ndarray
    expected_calibration_error: float


def reliability(correct: np.ndarray, confidence: np.ndarray, bins: int = 10) -> Reliability:
    """Observed accuracy against predicted confidence in equal-width bins, and the ECE."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    total_conf = np.bincount(index, weights=confidence, minlength=bins)
    total_correct = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    filled = counts > 0
    mean_conf = np.divide(total_conf, counts, out=np.full(bins, np.nan), where=filled)
    accuracy = np.divide(total_correct, counts, out=np.full(bins, np.nan), where=filled)
    ece = float(np.nansum(np.abs(accuracy - mean_conf) * counts) / max(counts.sum(), 1))
    return Reliability(mean_conf, accuracy, counts, ece)
