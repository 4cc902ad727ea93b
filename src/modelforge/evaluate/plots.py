"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes.

Each function takes plain arrays and returns `bytes`; `data_uri` embeds them in HTML, so
reports are single files that open offline.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from modelforge.evaluate.curves import Curve, Reliability, is_validation_metric

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def to_png(figure: Any, dpi: int = 96) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ----------------------------------------------------------------------------- training
def _x_axis(history: Sequence[dict[str, Any]]) -> tuple[str, list[float]]:
    key = "epoch" if all("epoch" in row for row in history) else "step"
    return key, [float(row.get(key, i + 1)) for i, row in enumerate(history)]


def _points(x: list[float], history: Sequence[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    return [(xi, row[key]) for xi, row in zip(x, history, strict=True) if isinstance(row.get(key), int | float)]


def learning_curves(history: Sequence[dict[str, Any]]) -> bytes:
    """Losses, validation metrics and learning rate against epoch (or step)."""
    x_name, x = _x_axis(history)
    keys = sorted({k for row in history for k, v in row.items() if isinstance(v, int | float)})
    losses = [k for k in keys if k.endswith("loss")]
    metrics = [k for k in keys if is_validation_metric(k)]
    panels = [("loss", losses), ("validation metric", metrics), ("learning rate", ["lr"] if "lr" in keys else [])]
    panels = [(title, names) for title, names in panels if names]
    figure, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 3.2), squeeze=False)
    for axis, (title, names) in zip(axes[0], panels, strict=False):
        for name in names:
            points = _points(x, history, name)
            if points:
                xs, ys = zip(*points, strict=True)
                axis.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
        axis.set_title(title)
        axis.set_xlabel(x_name)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return to_png(figure)


def perplexity_curve(steps: Sequence[float], perplexity: Sequence[float]) -> bytes:
    figure, axis = plt.subplots(figsize=(4.6, 3.2))
    axis.plot(steps, perplexity, marker="o" if len(steps) < 30 else None, markersize=3, color=COLORS[1])
    axis.set_xlabel("step")
    axis.set_ylabel("exp(val_loss)")
    axis.set_title("validation perplexity")
    axis.grid(alpha=0.3)
    return to_png(figure)


def overlaid_curves(histories: dict[str, Sequence[dict[str, Any]]], keys: Sequence[str]) -> bytes:
    """The same metrics of several runs on shared axes (one panel per metric)."""
    figure, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.3), squeeze=False)
    for axis, key in zip(axes[0], keys, strict=True):
        for color, (name, history) in zip(COLORS * 10, histories.items(), strict=False):
            x_name, x = _x_axis(history)
            points = _points(x, history, key)
            if points:
                xs, ys = zip(*points, strict=True)
                axis.plot(xs, ys, color=color, label=name)
            axis.set_xlabel(x_name)
        axis.set_title(key)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return to_png(figure)


# ----------------------------------------------------------------------------- classification
def confusion(matrix: np.ndarray, classes: Sequence[str]) -> bytes:
    size = min(3 + 0.45 * len(classes), 10)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    ticks = np.arange(len(classes))
    axis.set_xticks(ticks, [str(c) for c in classes], rotation=45, ha="right")
    axis.set_yticks(ticks, [str(c) for c in classes])
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    if len(classes) <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, str(value), ha="center", va="center", color="white" if value > threshold else "black")
    axis.set_title("confusion matrix")
    return to_png(figure)


def threshold_curves(curves: dict[str, Curve], kind: str) -> bytes:
    """ROC (kind='roc') or precision-recall (kind='pr') curves, one line per class."""
    figure, axis = plt.subplots(figsize=(4.6, 4))
    for color, (label, curve) in zip(COLORS * 10, curves.items(), strict=False):
        name = "AUC" if kind == "roc" else "AP"
        drawstyle = "steps-post" if kind == "pr" else "default"
        axis.plot(curve.x, curve.y, color=color, drawstyle=drawstyle, label=f"{label} ({name} {curve.area:.3f})")
    if kind == "roc":
        axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        axis.set_xlabel("false positive rate")
        axis.set_ylabel("true positive rate")
        axis.set_title("ROC curve")
    else:
        axis.set_xlabel("recall")
        axis.set_ylabel("precision")
        axis.set_title("precision-recall curve")
    axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
    return to_png(figure)


def reliability_diagram(result: Reliability) -> bytes:
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(4.6, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    bins = len(result.counts)
    centers = (np.arange(bins) + 0.5) / bins
    filled = result.counts > 0
    top.bar(centers[filled], result.accuracy[filled], width=1 / bins, edgecolor="black", alpha=0.7, label="observed")
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    top.plot(result.confidence[filled], result.accuracy[filled], marker="o", color=COLORS[1], label="mean confidence")
    top.set_ylabel("accuracy")
    top.set_title(f"reliability (ECE {result.expected_calibration_error:.3f})")
    top.legend(fontsize=7, loc="upper left")
    top.grid(alpha=0.3)
    bottom.bar(centers, result.counts, width=1 / bins, color="grey")
    bottom.set_xlabel("predicted confidence")
    bottom.set_ylabel("rows")
    return to_png(figure)


# ----------------------------------------------------------------------------- decisions (binary)
def threshold_tradeoff(
    thresholds: np.ndarray,
    series: dict[str, np.ndarray],
    cost: np.ndarray,
    cost_label: str,
    chosen: float,
    chosen_label: str,
) -> bytes:
    """Left: precision, recall and flag rate against the threshold; right: the cost curve (expected cost
    per row against the threshold). Both mark the chosen threshold."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(9.2, 3.6))
    for color, (name, values) in zip(COLORS, series.items(), strict=False):
        left.plot(thresholds, values, color=color, drawstyle="steps-post", label=name)
    right.plot(thresholds, cost, color=COLORS[3], drawstyle="steps-post")
    for axis in (left, right):
        axis.axvline(chosen, color="black", linestyle="--", linewidth=1, label=chosen_label)
        axis.set_xlabel("threshold on P(positive)")
        axis.set_xlim(0, 1)
        axis.grid(alpha=0.3)
    left.set_ylim(-0.02, 1.02)
    left.set_title("precision, recall and flag rate")
    left.legend(fontsize=7, loc="center right")
    right.set_title("cost curve")
    right.set_ylabel(cost_label)
    right.legend(fontsize=7, loc="upper right")
    return to_png(figure)


def precision_recall_point(curve: Curve, recall: float, precision: float, label: str) -> bytes:
    """The precision-recall curve with the operating point of the chosen threshold."""
    figure, axis = plt.subplots(figsize=(4.6, 4))
    axis.plot(curve.x, curve.y, color=COLORS[0], drawstyle="steps-post", label=f"AP {curve.area:.3f}")
    axis.plot([recall], [precision], marker="o", markersize=8, color="black", linestyle="none", label=label)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_title("precision-recall curve")
    axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower left")
    return to_png(figure)


def reliability_before_after(curves: dict[str, list[dict[str, float]]]) -> bytes:
    """Observed rate against mean predicted probability per bin, one line per named set of bins
    (e.g. before and after calibration)."""
    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for color, (name, bins) in zip(COLORS, curves.items(), strict=False):
        axis.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], marker="o", color=color, label=name)
    axis.set_xlabel("predicted P(positive)")
    axis.set_ylabel("observed share positive")
    axis.set_title("reliability")
    axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper left")
    return to_png(figure)


# ----------------------------------------------------------------------------- regression
def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray) -> bytes:
    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    axis.scatter(actual, predicted, s=10, alpha=0.6)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axis.plot([low, high], [low, high], linestyle="--", color="grey")
    axis.set_xlabel("actual")
    axis.set_ylabel("predicted")
    axis.set_title("predicted vs actual")
    axis.grid(alpha=0.3)
    return to_png(figure)


def residuals(actual: np.ndarray, predicted: np.ndarray) -> bytes:
    error = actual - predicted
    figure, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    left.scatter(predicted, error, s=10, alpha=0.6)
    left.axhline(0, color="grey", linestyle="--")
    left.set_xlabel("predicted")
    left.set_ylabel("residual (actual − predicted)")
    left.set_title("residuals")
    left.grid(alpha=0.3)
    right.hist(error, bins=min(40, max(5, len(error) // 5)), color=COLORS[0], edgecolor="white")
    right.set_xlabel("residual")
    right.set_ylabel("rows")
    right.set_title("residual distribution")
    return to_png(figure)


# ----------------------------------------------------------------------------- explanations
def importance_bars(importance: dict[str, float], title: str, top: int = 20) -> bytes:
    items = list(importance.items())[:top][::-1]
    figure, axis = plt.subplots(figsize=(6, 0.3 * len(items) + 1.2))
    axis.barh([name for name, _ in items], [value for _, value in items], color=COLORS[0])
    axis.set_xlabel("mean |attribution|")
    axis.set_title(title)
    axis.grid(alpha=0.3, axis="x")
    return to_png(figure)


def attribution_heatmap(image: np.ndarray, attribution: np.ndarray, title: str, aspect: str = "equal") -> bytes:
    """The input (C×H×W, C×F×T, or 2-D) beside its signed attribution map (aspect 'auto' for spectrograms)."""
    shown = image.mean(axis=0) if image.ndim == 3 else image
    limit = float(np.abs(attribution).max()) or 1.0
    figure, (left, right) = plt.subplots(1, 2, figsize=(6, 3.2))
    left.imshow(shown, cmap="gray", aspect=aspect)
    left.set_title("input")
    right.imshow(shown, cmap="gray", aspect=aspect)
    overlay = right.imshow(attribution, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.65, aspect=aspect)
    right.set_title("attribution")
    figure.colorbar(overlay, ax=right, fraction=0.046)
    for axis in (left, right):
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title, fontsize=9)
    return to_png(figure)


def attention_grid(weights: np.ndarray, tokens: Sequence[str], title: str) -> bytes:
    """One layer's attention for one row: heads × (L×L), query rows against key columns."""
    heads = weights.shape[0]
    length = len(tokens)
    columns = min(heads, 4)
    rows = (heads + columns - 1) // columns
    size = 2.2 + 0.12 * length
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for head in range(rows * columns):
        axis = axes[head // columns][head % columns]
        if head >= heads:
            axis.axis("off")
            continue
        axis.imshow(weights[head, :length, :length], cmap="viridis", vmin=0)
        axis.set_title(f"head {head}", fontsize=8)
        if length <= 24:
            axis.set_xticks(range(length), tokens, rotation=90, fontsize=6)
            axis.set_yticks(range(length), tokens, fontsize=6)
        else:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(title, fontsize=9)
    return to_png(figure)


def input_thumbnail(image: np.ndarray) -> bytes:
    figure, axis = plt.subplots(figsize=(1.2, 1.2))
    shown = np.moveaxis(image, 0, -1) if image.ndim == 3 and image.shape[0] == 3 else image.mean(axis=0)
    low, high = float(shown.min()), float(shown.max())
    axis.imshow((shown - low) / ((high - low) or 1.0), cmap=None if shown.ndim == 3 else "gray", aspect="auto")
    axis.axis("off")
    return to_png(figure, dpi=72)
