"""Images for generation: read the image column (and labels), scale pixels to [0, 1], split rows.

Shared by the recipe (training) and the run (reconstruct, interpolate, evaluate on new files),
so that neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from modelforge.config import RunConfig
from modelforge.data.readers import read_data, train_files
from modelforge.errors import DataError


@dataclass
class ImageSet:
    """Images as N × C × H × W floats in [0, 1], label indices (or None), and how to undo the layout."""

    images: np.ndarray
    labels: np.ndarray | None
    classes: list[str]
    layout: list[int]  # one image's array shape in the data (H×W, or H×W×C)
    scale: float  # data value of a full-intensity pixel


def image_column(config: RunConfig) -> str:
    images = [f.name for f in config.features or [] if f.type == "image"]
    return images[0] if images else "x"


def read_images(config: RunConfig) -> ImageSet:
    source = train_files(config.data)[0]
    frame = read_data(source, config.data.bad_rows)
    column = image_column(config)
    if column not in frame.columns:
        raise DataError(f"{source}: no image column {column!r} (columns: {', '.join(frame.columns)})")
    return to_image_set(frame, column, config.data.target)


def to_image_set(
    frame: pd.DataFrame, column: str, target: str | None, classes: list[str] | None = None, scale: float | None = None
) -> ImageSet:
    try:
        stack = np.stack([np.asarray(v, dtype=np.float32) for v in frame[column]])
    except ValueError:
        raise DataError(f"column {column!r}: images differ in size; generation needs one size") from None
    if stack.ndim not in (3, 4):
        raise DataError(f"column {column!r}: expected H×W or H×W×C images, got arrays of shape {stack.shape[1:]}")
    layout = list(stack.shape[1:])
    images = stack[:, None] if stack.ndim == 3 else stack.transpose(0, 3, 1, 2)
    scale = scale or (1.0 if images.max() <= 1.0 else 255.0 if images.max() > 16 else 16.0)
    images = np.clip(images / scale, 0.0, 1.0)
    if target is None:
        return ImageSet(images, None, [], layout, scale)
    if target not in frame.columns:
        raise DataError(f"data.target: column {target!r} not found (columns: {', '.join(frame.columns)})")
    values = frame[target].astype(str)
    classes = classes or sorted(values.unique(), key=lambda v: (len(v), v))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise DataError(f"data.target: label {unknown[0]!r} was not seen in training (classes: {', '.join(classes)})")
    return ImageSet(images, np.array(values.map(index), dtype=np.int64), classes, layout, scale)


def split_rows(n: int, config: RunConfig) -> dict[str, np.ndarray]:
    seed = config.data.split.seed if config.data.split.seed is not None else config.seed
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = round(config.data.split.test * n), round(config.data.split.valid * n)
    return {"test": order[:n_test], "valid": order[n_test : n_test + n_valid], "train": order[n_test + n_valid :]}


def tensors(data: ImageSet, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    images = torch.from_numpy(data.images[rows])
    return images, None if data.labels is None else torch.from_numpy(data.labels[rows])
