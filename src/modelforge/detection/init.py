"""`modelforge init annotations.json` (or a YOLO folder): a detection config that trains without edits.

Everything is chosen from what the data looks like, nothing from any one data set:

- input side: the median longer image side, rounded up to a multiple of 32 and kept within 64–512;
  raised (up to 640) when a tenth of the boxes would be under 8 pixels on their shorter side (the
  detector's output grid has a 4-pixel stride, so a smaller object has under two cells);
- model: widths from the number of images (up to 2,000: 32-64-128; more: 48-96-192), a feature
  pyramid always, 2 blocks a stage from 5,000 images on, heads 32 wide up to a 160 side (64 above);
- epochs: about 120,000 image presentations at sides up to 160, fewer for larger inputs (in
  proportion to the pixels: 12,000 at 512), 6 to 150 epochs; batch 32 (16 above a 384 side), AdamW
  with a cosine schedule after a short warm-up. At least 6 passes: from 20,000 images on, the
  budget grows with the data;
- split: data.valid / data.test from sibling files (val.json, test.json; images/val, images/test) or
  the parts of a YOLO set laid out by split (train/images, images/train, a data.yaml) when they exist,
  else 10% + 10% of the images.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from modelforge.detection.data import (
    DetectionSet,
    labels_folder,
    read_detection_set,
    yolo_images_folder,
    yolo_splits,
)

PRESENTATIONS = 120_000  # images seen in training (augmented), at an input side of 160 or less
MIN_EPOCHS = 6
HELD_OUT = {"valid": ("val", "valid", "validation", "dev"), "test": ("test",)}


def held_out_files(data: Path) -> dict[str, Path]:
    """Sibling splits of a training set: `val.json` beside `train.json`, `images/val` beside `images/train`."""
    found: dict[str, Path] = {}
    images = yolo_images_folder(data)
    for key, stems in HELD_OUT.items():
        for stem in stems:
            if images is not None and images.name not in ("images",):  # images/train → images/val
                candidate = images.with_name(stem)
                labels = labels_folder(candidate)
                if candidate.is_dir() and labels is not None and labels.is_dir() and candidate != images:
                    found[key] = candidate
                    break
            elif data.is_file():
                name = data.name.replace("train", stem) if "train" in data.name else f"{stem}.json"
                candidate = data.with_name(name)
                if candidate.is_file() and candidate != data:
                    found[key] = candidate
                    break
    return found


def input_side(data: DetectionSet) -> int:
    """See the module docstring."""
    longest = np.array([max(w, h) for w, h in data.sizes], dtype=np.float64)
    side = int(min(512, max(64, math.ceil(float(np.median(longest)) / 32) * 32)))
    shorter = [
        min(box[2], box[3]) / max(size) for boxes, size in zip(data.boxes, data.sizes, strict=True) for box in boxes
    ]
    small = float(np.percentile(shorter, 10)) if shorter else 1.0
    while side < 640 and small * side < 8 and side < np.median(longest):
        side += 32
    return side


def detection_config(data: Path, out: Path | None) -> dict[str, Any]:
    """A detection config for COCO annotation JSON or a YOLO folder."""
    base = out.resolve().parent if out else Path.cwd()

    def relative(path: Path) -> str:
        return os.path.relpath(path.resolve(), base)

    splits = yolo_splits(data)  # a YOLO set laid out by split: its own parts, not shares drawn at random
    data = splits.pop("train", data)
    train = read_detection_set(data)
    held_out = splits or held_out_files(data)
    side = input_side(train)
    n = len(train)
    split = {"valid": 0.0 if "valid" in held_out else 0.1, "test": 0.0 if "test" in held_out else 0.1}
    train_images = n * (1 - split["valid"] - split["test"])
    batch_size = 32 if side <= 384 else 16
    presentations = PRESENTATIONS * min(1.0, (160 / side) ** 2)  # larger inputs: fewer, costlier steps
    epochs = int(min(150, max(MIN_EPOCHS, math.ceil(presentations / max(train_images, 1)))))
    steps = epochs * math.ceil(train_images / batch_size)
    data_section: dict[str, Any] = {"train": relative(data)}
    data_section.update({key: relative(path) for key, path in held_out.items()})
    if split != {"valid": 0.0, "test": 0.0}:
        data_section["split"] = split
    return {
        "task": "detection",
        "seed": 0,
        "data": data_section,
        "model": {
            "type": "detector",
            "backbone": "resnet",
            "widths": [32, 64, 128] if n <= 2000 else [48, 96, 192],
            "blocks_per_stage": 1 if n < 5000 else 2,
            "fpn": True,
            "head_width": 32 if side <= 160 else 64,  # the heads run at stride 4: most of the cost
        },
        "train": {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": 2.0e-3,
            "min_lr": 2.0e-5,
            "optimizer": "adamw",
            "weight_decay": 5.0e-4,
            "schedule": "cosine",
            "warmup_steps": int(min(1000, max(50, steps // 30))),
            "grad_clip": 10.0,
        },
        **dict(detection={"image_size": side, "max_detections": 100, "score_threshold": 0.3}),
    }
