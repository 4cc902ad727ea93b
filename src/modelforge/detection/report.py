"""`modelforge report` on a detection run: headline mAP, learning curves, sample images with true boxes
(green) and predicted boxes (red, with class and score), per-class AP and precision–recall curves at
IoU 0.5 (pycocotools' own interpolated curves), and the model card.

The images are the run's held-out split (test, else valid), re-read and re-split as training did, or
`--data` (COCO JSON or a YOLO folder); at most REPORT_IMAGES of them are scored.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelforge.detection.data import DetectionSet
from modelforge.detection.recipe import read_splits
from modelforge.detection.run import Detections, DetectorRun, load_detector_run
from modelforge.errors import DataError
from modelforge.evaluate.report import (
    Section,
    _read_json,
    curves_section,
    epoch_fields,
    esc,
    model_card_section,
    note,
    page_heading,
    render_page,
    summary_section,
    table,
    training_files,
)
from modelforge.files import read_jsonl

REPORT_IMAGES = 500
SAMPLES = 12
TRUE, PREDICTED = (40, 200, 60), (230, 40, 40)


def held_out_set(run: DetectorRun, data: str | Path | None) -> tuple[DetectionSet, str]:
    if data is not None:
        return run.read(data), str(data)
    _, valid, test = read_splits(run.config)
    return (test, "test split") if test is not None else (valid, "validation split")


def drawn(file: Path, truth: np.ndarray, truth_labels: np.ndarray, found: Detections, classes: list[str]) -> str:
    """The image with its true (green) and predicted (red) boxes, enlarged to at least 256 px, as a data URL."""
    from PIL import Image, ImageDraw

    with Image.open(file) as original:
        image = original.convert("RGB")
    zoom = max(1.0, 256 / max(image.size))
    image = image.resize((round(image.width * zoom), round(image.height * zoom)), Image.NEAREST)
    pen = ImageDraw.Draw(image)
    for box, label in zip(truth, truth_labels, strict=True):
        x, y, w, h = (float(v) * zoom for v in box)
        pen.rectangle([x, y, x + w, y + h], outline=TRUE, width=2)
        pen.text((x + 2, y + h - 11), classes[int(label)], fill=TRUE)
    for box, score, label in zip(found.boxes, found.scores, found.labels, strict=True):
        x, y, w, h = (float(v) * zoom for v in box)
        pen.rectangle([x, y, x + w, y + h], outline=PREDICTED, width=1)
        pen.text((x + 2, y + 1), f"{classes[int(label)]} {score:.2f}", fill=PREDICTED)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pr_curves_png(curves: dict[str, dict[str, list[float]]]) -> bytes:
    from modelforge.evaluate import plots

    figure, axis = plots.plt.subplots(figsize=(6, 4.5))
    for name, curve in curves.items():
        axis.plot(curve["recall"], curve["precision"], label=name, linewidth=1.2)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_title("precision–recall per class, IoU 0.5 (pycocotools)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=7, ncol=2, loc="lower left")
    return plots.to_png(figure)


def detection_report(run_dir: Path, data: str | Path | None = None, slice_by: Sequence[str] = (), **_: Any) -> str:
    from modelforge.evaluate import plots

    if slice_by:
        raise DataError(f"{run_dir}: --slice-by applies to classification and regression runs")
    run = load_detector_run(run_dir)
    held_out, source = held_out_set(run, data)
    held_out = held_out.take(np.arange(min(len(held_out), REPORT_IMAGES)))
    scored = run.evaluate(held_out, curves=True)
    metrics = _read_json(run_dir / "eval.json")
    sections = [
        summary_section(run_dir, run.config, metrics, None, run.headline),
        curves_section(read_jsonl(run_dir / "metrics.jsonl")),
    ]
    threshold = run.config.detection.score_threshold if run.config.detection else 0.3
    samples = held_out.take(np.arange(min(len(held_out), SAMPLES)))
    found = run.detect_files(samples.files, threshold)
    pictures = "".join(
        f"<figure style='display:inline-block;margin:4px'><img src='{drawn(f, b, lab, d, run.classes)}'>"
        f"<figcaption>{esc(f.name)}</figcaption></figure>"
        for f, b, lab, d in zip(samples.files, samples.boxes, samples.labels, found, strict=True)
    )
    body = note(
        f"the first {len(samples)} images of the {source}: true boxes green, predicted boxes red "
        f"(score ≥ {threshold}); on {len(held_out)} images mAP {scored['map']:.4f}, mAP@.5 {scored['map50']:.4f}"
    )
    sections.append(Section("samples", "Boxes on sample images", body + pictures))
    rows = [{"class": name, "AP@[.5:.95]": ap} for name, ap in scored["ap_per_class"].items()]
    curves = f"<img src='{plots.data_uri(pr_curves_png(scored['pr_curves']))}'>" if scored.get("pr_curves") else ""
    sections.append(Section("classes", "Per-class AP and precision–recall", table(rows) + curves))
    model_info = _read_json(run_dir / "model.json")
    fields = training_files(run.config) | {
        "input": f"{run.channels} × {run.side} × {run.side} letterboxed",
        "classes": ", ".join(run.classes),
    }
    sections.append(
        model_card_section(run_dir, run.config, model_info, metrics, [], fields, epoch_fields(run.config, metrics))
    )
    return render_page(*page_heading(run_dir, run.config), sections)
