"""COCO mAP by pycocotools, the field's reference implementation: our numbers are its numbers.

`coco_metrics` builds the ground truth and the detections as pycocotools' own COCO objects (in memory)
and runs COCOeval for boxes: `map` (mAP@[.5:.95]), `map50`, `map75`, small/medium/large, recall at
100 detections, per-class AP, and the per-class precision–recall curves at IoU 0.5 (for the report).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from modelforge.detection.data import DetectionSet
from modelforge.errors import ModelforgeError

STATS = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "recall_1", "recall_10", "recall_100")


def _cocoeval() -> Any:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ModelforgeError(
            "detection metrics use pycocotools: pip install 'modelforge[detection]' (or pip install pycocotools)"
        ) from None
    return COCO, COCOeval


def ground_truth(data: DetectionSet) -> dict[str, Any]:
    """The set as a COCO dataset dict (image ids 1..N in order, annotation ids 1..K)."""
    images = [
        {"id": i + 1, "file_name": str(f.name), "width": w, "height": h}
        for i, (f, (w, h)) in enumerate(zip(data.files, data.sizes, strict=True))
    ]
    annotations = []
    for i, (boxes, labels) in enumerate(zip(data.boxes, data.labels, strict=True)):
        crowd = data.crowd[i] if data.crowd else np.zeros(len(boxes), dtype=bool)
        for box, label, is_crowd in zip(boxes, labels, crowd, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": data.category_ids[int(label)],
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": int(is_crowd),
                }
            )
    categories = [{"id": cid, "name": name} for cid, name in zip(data.category_ids, data.classes, strict=True)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_metrics(data: DetectionSet, detections: list[dict[str, Any]], curves: bool = False) -> dict[str, Any]:
    """pycocotools' bbox evaluation of `detections` ({image_id (1-based row), category_id, bbox xywh, score}).

    Returns the STATS, `ap_per_class` {class: AP@[.5:.95]} (NaN for a class with no boxes), and with
    `curves` the per-class precision at IoU 0.5 over recall 0, 0.01, …, 1 (`pr_curves`)."""
    COCO, COCOeval = _cocoeval()
    empty = {name: 0.0 for name in STATS}
    result: dict[str, Any] = {"images": len(data), "detections": len(detections)}
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = ground_truth(data)
        truth.createIndex()
        if not detections or not truth.dataset["annotations"]:
            return {**result, **empty, "ap_per_class": dict.fromkeys(data.classes, 0.0)}
        predicted = truth.loadRes(detections)
        evaluation = COCOeval(truth, predicted, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    result.update({name: max(float(value), 0.0) for name, value in zip(STATS, evaluation.stats, strict=False)})
    precision = evaluation.eval["precision"]  # IoU thresholds × recall points × classes × areas × max dets
    per_class = {}
    for k, name in enumerate(data.classes):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        per_class[name] = float(values.mean()) if values.size else float("nan")
    result["ap_per_class"] = per_class
    if curves:
        recall = evaluation.params.recThrs.tolist()
        result["pr_curves"] = {
            name: {"recall": recall, "precision": np.maximum(precision[0, :, k, 0, -1], 0).tolist()}
            for k, name in enumerate(data.classes)
        }
    return result
