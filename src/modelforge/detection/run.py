"""A detection run directory: load it, detect boxes in images, evaluate with COCO mAP, write boxes.csv.

RUN_DIR/  config.yaml  preprocessing.json (classes, COCO category ids, channels, letterbox side)
          model.safetensors  model.json  metrics.jsonl  eval.json  environment.json  files.json
          checkpoints/  tensorboard/   (written by detection/recipe.py, as every recipe's)

Boxes come back in the original image's pixels (the letterbox undone), as COCO's x, y, w, h.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modelforge.config import DetectionConfig, RunConfig
from modelforge.detection.boxes import batched_nms
from modelforge.detection.data import (
    IMAGE_SUFFIXES,
    DetectionSet,
    Letterbox,
    letterbox,
    read_detection_set,
    recognizes_detection_data,
)
from modelforge.errors import DataError, RunError
from modelforge.models import build_model
from modelforge.models.detector import DetectionSpec
from modelforge.run import RunDirectory, read_finished_run

BATCH = 32


@dataclass
class Detections:
    """One image's boxes (K × 4 x y w h in its own pixels), scores and class indices, best first."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def settings_of(config: RunConfig) -> DetectionConfig:
    return config.detection or DetectionConfig()


@torch.no_grad()
def detect_pixels(
    model: Any, pixels: np.ndarray, boxes_of: Sequence[Letterbox], settings: DetectionConfig, threshold: float
) -> list[Detections]:
    """Boxes for letterboxed uint8 images (N × C × S × S), mapped back through each image's letterbox."""
    model.eval()
    found = []
    for begin in range(0, len(pixels), BATCH):
        images = torch.from_numpy(pixels[begin : begin + BATCH]).float() / 255.0
        boxes, scores, labels = model.decode(model(images), settings.max_detections)
        for i in range(len(images)):
            keep = scores[i] >= max(threshold, 1e-6)
            b, s, lab = boxes[i][keep], scores[i][keep], labels[i][keep]
            if settings.nms_iou is not None and len(b):
                kept = batched_nms(b, s, lab, settings.nms_iou)
                b, s, lab = b[kept], s[kept], lab[kept]
            box = boxes_of[begin + i]
            xyxy = (b - torch.tensor([box.pad_x, box.pad_y, box.pad_x, box.pad_y])) / box.scale
            xywh = torch.cat([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], dim=1)
            found.append(Detections(xywh.numpy(), s.numpy(), lab.numpy()))
    return found


def image_size(image: Any) -> tuple[int, int]:
    """(width, height) of a PIL image or an H × W, H × W × C or C × H × W array."""
    if not isinstance(image, np.ndarray):
        return image.width, image.height
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[2] not in (1, 3):
        return image.shape[2], image.shape[1]
    return image.shape[1], image.shape[0]


def clip_to_image(detections: Detections, width: int, height: int) -> Detections:
    boxes = detections.boxes.copy()
    x1, y1 = np.clip(boxes[:, 0], 0, width), np.clip(boxes[:, 1], 0, height)
    x2, y2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width), np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    return Detections(np.stack([x1, y1, x2 - x1, y2 - y1], axis=1), detections.scores, detections.labels)


def image_files(path: Path) -> list[Path]:
    """An image file, or the images of a folder (searched recursively), in name order."""
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
        raise DataError(f"{path}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    raise DataError(f"{path}: not found; expected an image, a folder of images, or COCO annotation JSON")


@dataclass
class DetectorRun(RunDirectory):
    """A trained detector. `detect(images)` → one Detections per image; `predict(path)` → boxes.csv rows;
    `evaluate(path)` → pycocotools mAP on COCO JSON or a YOLO folder."""

    path: Path
    config: RunConfig
    model: Any = field(repr=False)
    model_info: dict[str, Any]
    preprocessing: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.config.task)

    @property
    def classes(self) -> list[str]:
        return list(self.preprocessing["classes"])

    @property
    def side(self) -> int:
        return int(self.preprocessing["image_size"])

    @property
    def channels(self) -> int:
        return int(self.preprocessing["channels"])

    @property
    def headline(self) -> tuple[str, ...]:
        return ("map", "map50", "map75")

    def detect(self, images: Sequence[Any], score_threshold: float | None = None) -> list[Detections]:
        """Boxes for PIL images or H × W[× C] arrays (uint8, or floats in [0, 1]), each in its own pixels."""
        settings = settings_of(self.config)
        threshold = settings.score_threshold if score_threshold is None else score_threshold
        pixels = np.empty((len(images), self.channels, self.side, self.side), dtype=np.uint8)
        boxes_of, sizes = [], []
        for i, image in enumerate(images):
            pixels[i], box = letterbox(image, self.side, self.channels)
            boxes_of.append(box)
            sizes.append(image_size(image))
        found = detect_pixels(self.model, pixels, boxes_of, settings, threshold)
        return [clip_to_image(d, w, h) for d, (w, h) in zip(found, sizes, strict=True)]

    def detect_files(self, files: Sequence[Path], score_threshold: float | None = None) -> list[Detections]:
        from PIL import Image

        found: list[Detections] = []
        for begin in range(0, len(files), BATCH):
            images = []
            for file in files[begin : begin + BATCH]:
                try:
                    with Image.open(file) as image:
                        image.load()
                        images.append(image.copy())
                except OSError as exc:
                    raise DataError(f"{file}: cannot read the image ({exc.__class__.__name__})") from None
            found.extend(self.detect(images, score_threshold))
        return found

    def read(self, data: str | Path) -> DetectionSet:
        """Labelled data in the run's class order (COCO JSON or a YOLO folder)."""
        return read_detection_set(data, self.classes, self.preprocessing["category_ids"])

    def coco_detections(self, data: DetectionSet) -> list[dict[str, Any]]:
        """Every box the model finds in `data` (no score threshold), in pycocotools' result format."""
        found = self.detect_files(data.files, score_threshold=0.0)
        ids = data.category_ids
        return [
            {"image_id": i + 1, "category_id": ids[int(label)], "bbox": [float(v) for v in box], "score": float(score)}
            for i, d in enumerate(found)
            for box, score, label in zip(d.boxes, d.scores, d.labels, strict=True)
        ]

    def evaluate(self, data: str | Path | DetectionSet, curves: bool = False) -> dict[str, Any]:
        """COCO mAP@[.5:.95], mAP@.5, mAP@.75 and per-class AP (pycocotools) on labelled data."""
        from modelforge.detection.metrics import coco_metrics

        labelled = data if isinstance(data, DetectionSet) else self.read(data)
        metrics = coco_metrics(labelled, self.coco_detections(labelled), curves=curves)
        where = "given set" if isinstance(data, DetectionSet) else str(data)
        return {"split": where, **metrics}

    def predict(self, data: str | Path | pd.DataFrame, score_threshold: float | None = None) -> pd.DataFrame:
        """One row per box: image, x, y, w, h (its pixels), label, score — for an image, a folder of images,
        COCO annotation JSON (its images) or a YOLO folder."""
        if isinstance(data, pd.DataFrame):
            raise DataError("detection runs predict on image files: pass an image, a folder or COCO JSON")
        path = Path(data)
        files = self.read(path).files if recognizes_detection_data(path) else image_files(path)
        root = path if path.is_dir() else path.parent
        rows = []
        for file, found in zip(files, self.detect_files(files, score_threshold), strict=True):
            name = str(file.relative_to(root)) if file.is_relative_to(root) else str(file)
            for box, score, label in zip(found.boxes, found.scores, found.labels, strict=True):
                rows.append(
                    (name, *(round(float(v), 2) for v in box), self.classes[int(label)], round(float(score), 4))
                )
        return pd.DataFrame(rows, columns=["image", "x", "y", "w", "h", "label", "score"])


def load_detector_run(path: str | Path) -> DetectorRun:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: run directory not found")
    config, info = read_finished_run(path)
    spec = DetectionSpec(**info["input_spec"])
    model = build_model(info["type"], spec, 0, info["options"])
    preprocessing = json.loads((path / "preprocessing.json").read_text())
    if info.get("quantization"):  # a `modelforge compress` copy: int8 convolutions
        from modelforge.detection.compress import load_int8_detector

        model = load_int8_detector(model, path / "model.safetensors", spec.channels, spec.size)
        return DetectorRun(path, config, model, info, preprocessing)
    try:
        model.load_state_dict(load_file(str(path / "model.safetensors")))
    except (RuntimeError, OSError) as exc:
        raise RunError(f"{path / 'model.safetensors'}: weights do not load ({str(exc).splitlines()[0]})") from None
    model.eval()
    return DetectorRun(path, config, model, info, preprocessing)


def write_boxes(
    run_dir: str | Path, data: Path, out: Path | None, score_threshold: float | None = None, engine: str = "torch"
) -> str:
    """`modelforge predict RUN --data IMAGES [--out boxes.csv] [--score-threshold T] [--engine onnx]`: the CSV
    text, or where it went (the task's predict entry). `engine="onnx"` runs RUN_DIR/model.onnx."""
    from modelforge.files import atomic_write_text

    if engine not in ("torch", "onnx"):
        raise DataError(f"--engine: expected torch or onnx, got {engine!r}")
    if score_threshold is not None and not 0.0 <= score_threshold <= 1.0:
        raise DataError(f"--score-threshold: must be in [0, 1], got {score_threshold}")
    if engine == "onnx":
        from modelforge.detection.onnx import load_onnx_detector_run

        run = load_onnx_detector_run(run_dir)
    else:
        run = load_detector_run(run_dir)
    frame = run.predict(data, score_threshold)
    text = frame.to_csv(index=False)
    if out is None:
        return text
    atomic_write_text(out, text)
    return f"wrote {len(frame)} boxes in {frame['image'].nunique()} images to {out}"
