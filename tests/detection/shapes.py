"""A tiny generated detection set: bright squares and discs (and bars) on dark, noisy 64 px canvases,
written as PNGs with COCO annotation JSON (or YOLO label files), exact boxes, seeded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("square", "disc", "bar")


def draw(rng: np.random.Generator, size: int, n_classes: int) -> tuple[np.ndarray, list[tuple[int, list[int]]]]:
    canvas = rng.integers(0, 50, size=(size, size)).astype(np.uint8)
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        label = int(rng.integers(0, n_classes))
        side = int(rng.integers(12, 25))
        width, height = (side, side) if label < 2 else (side, max(4, side // 3))
        x, y = int(rng.integers(0, size - width + 1)), int(rng.integers(0, size - height + 1))
        brightness = int(rng.integers(180, 256))
        if label == 1:  # a disc filling its box
            yy, xx = np.mgrid[0:height, 0:width]
            r = (side - 1) / 2
            inside = (xx - r) ** 2 + (yy - r) ** 2 <= r**2 + 0.5
            patch = canvas[y : y + height, x : x + width]
            patch[inside] = brightness
        else:
            canvas[y : y + height, x : x + width] = brightness
        objects.append((label, [x, y, width, height]))
    return canvas, objects


def write_shapes(folder: Path, n_images: int = 160, size: int = 64, seed: int = 0, n_classes: int = 2) -> Path:
    """PNGs under folder/images and folder/annotations.json (category ids 1.. in CLASSES order)."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(n_images):
        canvas, objects = draw(rng, size, n_classes)
        name = f"images/{i:04d}.png"
        Image.fromarray(canvas).save(folder / name)
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for label, box in objects:
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1, "bbox": box,
                 "area": box[2] * box[3], "iscrowd": 0}
            )  # fmt: skip
    categories = [{"id": k + 1, "name": CLASSES[k]} for k in range(n_classes)]
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def write_yolo(folder: Path, n_images: int = 40, size: int = 64, seed: int = 0) -> Path:
    """The same kind of images as a YOLO folder: images/, labels/ and classes.txt."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        canvas, objects = draw(rng, size, 2)
        Image.fromarray(canvas).save(folder / "images" / f"{i:04d}.png")
        lines = [
            f"{label} {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}"
            for label, (x, y, w, h) in objects
        ]
        (folder / "labels" / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    (folder / "classes.txt").write_text("square\ndisc\n")
    return folder
