"""A generation run directory: load, sample, reconstruct, interpolate, and write image grids.

RUN_DIR/  config.yaml  preprocessing.json (image column, classes, layout, pixel scale)
          model.safetensors  model.json  metrics.jsonl  eval.json  environment.json  files.json
          checkpoints/  tensorboard/   (written by generation/recipe.py, as a supervised run's)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modelforge.config import RunConfig
from modelforge.errors import DataError, ModelforgeError
from modelforge.files import atomic_write_bytes
from modelforge.generation.data import split_rows, to_image_set
from modelforge.models import build_model
from modelforge.models.generative import ConditionalVAE, ImageGenerationSpec
from modelforge.run import RunDirectory, read_finished_run


@torch.no_grad()
def negative_elbo(model: ConditionalVAE, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
    """Mean negative ELBO per image over a split (one z sample each, fixed seed)."""
    model.eval()
    torch.manual_seed(0)
    loss, parts = model.loss(images, labels)
    model.train()
    return {"loss": loss.item(), **parts}


@dataclass
class GeneratorRun(RunDirectory):
    """A trained image generator. Images come out as N × C × H × W floats in [0, 1]."""

    path: Path
    config: RunConfig
    model: torch.nn.Module
    model_info: dict[str, Any]
    preprocessing: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.config.task)

    @property
    def spec(self) -> ImageGenerationSpec:
        return ImageGenerationSpec(**self.model_info["input_spec"])

    @property
    def classes(self) -> list[str]:
        return list(self.preprocessing["classes"])

    @property
    def headline(self) -> tuple[str, ...]:
        scored = ("mean_confidence", "classes_covered", "label_agreement", "frechet_distance")
        return ("test_loss", "loss", "reconstruction", "kl", *scored)  # eval.json, or evaluate --data

    def labels_for(self, n: int, label: str | None = None) -> torch.Tensor | None:
        """Conditioning labels: `label` n times, or the classes in turn (0, 1, …, 9, 0, 1, …)."""
        if not self.classes:
            if label is not None:
                raise ModelforgeError(f"--label {label}: {self.path} was trained without labels (unconditional)")
            return None
        if label is None:
            return torch.arange(n) % len(self.classes)
        if str(label) not in self.classes:
            raise ModelforgeError(f"--label {label}: not a class of {self.path} (classes: {', '.join(self.classes)})")
        return torch.full((n,), self.classes.index(str(label)), dtype=torch.int64)

    def sample(
        self, n: int, label: str | None = None, seed: int = 0, temperature: float = 1.0
    ) -> tuple[np.ndarray, list[str]]:
        """n images and the class each was asked for ('' when unconditional)."""
        if n < 1:
            raise ModelforgeError(f"n: expected at least 1 image, got {n}")
        labels = self.labels_for(n, label)
        generator = torch.Generator().manual_seed(seed)
        images = self.model.sample(labels, n, generator, temperature).numpy()  # type: ignore[operator]
        names = [self.classes[int(i)] for i in labels] if labels is not None else [""] * n
        return images, names

    def read(self, data: str | Path | pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (and labels when the model is conditional) from a file with the training columns."""
        from modelforge.data.readers import read_data

        frame = data if isinstance(data, pd.DataFrame) else read_data(data, self.config.data.bad_rows)
        column = self.preprocessing["image_column"]
        if column not in frame.columns:
            raise DataError(f"{data}: no image column {column!r} (columns: {', '.join(frame.columns)})")
        target = self.config.data.target if self.classes else None
        images = to_image_set(frame, column, target, self.classes, self.preprocessing["scale"])
        if list(images.images.shape[1:]) != [self.spec.channels, self.spec.height, self.spec.width]:
            got = "×".join(map(str, images.layout))
            want = "×".join(map(str, self.preprocessing["layout"]))
            raise DataError(f"{data}: images are {got}, but {self.path} generates {want} images")
        labels = None if images.labels is None else torch.from_numpy(images.labels)
        return torch.from_numpy(images.images), labels

    def held_out_images(self) -> np.ndarray:
        """The test split of the training data (the reference set of the Fréchet distance)."""
        from modelforge.data.readers import train_files

        images, _ = self.read(train_files(self.config.data)[0])
        rows = split_rows(len(images), self.config)
        return images[rows["test"] if len(rows["test"]) > 2 else rows["train"]].numpy()

    def _vae(self, what: str) -> ConditionalVAE:
        if not isinstance(self.model, ConditionalVAE):
            raise ModelforgeError(f"--mode {what}: needs a vae run; {self.path} is a {self.model_info['type']} run")
        return self.model

    def reconstruct(self, data: str | Path | pd.DataFrame, n: int) -> np.ndarray:
        """Rows of (original, reconstruction) pairs for the first n images of `data`."""
        images, labels = self.read(data)
        images, labels = images[:n], None if labels is None else labels[:n]
        rebuilt = self._vae("reconstruct").reconstruct(images, labels)
        return torch.stack([images, rebuilt], dim=1).flatten(0, 1).numpy()

    def interpolate(self, data: str | Path | pd.DataFrame, pairs: int, steps: int = 8) -> np.ndarray:
        """`pairs` rows of `steps` images each, walking the latent line between consecutive images of `data`."""
        images, labels = self.read(data)
        model = self._vae("interpolate")
        rows = []
        for p in range(min(pairs, len(images) // 2)):
            pair_labels = None if labels is None else labels[2 * p : 2 * p + 2]
            rows.append(model.interpolate(images[2 * p], images[2 * p + 1], pair_labels, steps))
        if not rows:
            raise DataError(f"{data}: interpolation needs at least 2 images")
        return torch.cat(rows).numpy()

    def to_data_layout(self, images: np.ndarray) -> np.ndarray:
        """N × C × H × W in [0, 1] → the data's own array layout and pixel scale (what a classifier read)."""
        out = images * self.preprocessing["scale"]
        return out[:, 0] if len(self.preprocessing["layout"]) == 2 else out.transpose(0, 2, 3, 1)

    def predict(self, data: Any) -> pd.DataFrame:
        raise ModelforgeError(
            f"{self.path} is a generation run: it makes images rather than predictions; "
            "images, names = run.sample(64), then modelforge.generation.run.write_grid(images, 'grid.png')"
        )

    def evaluate(self, data: str | Path | pd.DataFrame) -> dict[str, Any]:
        """VAE: negative ELBO per image (and its parts) on the images of `data`."""
        return negative_elbo(self._vae("evaluate"), *self.read(data))


def write_grid(images: np.ndarray, out: str | Path, columns: int | None = None, zoom: int = 4) -> Path:
    """Tile N × C × H × W images in [0, 1] into a PNG (1-pixel gaps, each pixel `zoom`× enlarged)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ModelforgeError(f"{out}: the grid is written as PNG; name it *.png")
    atomic_write_bytes(out, grid_png(images, columns, zoom))
    return out


def grid_png(images: np.ndarray, columns: int | None = None, zoom: int = 4) -> bytes:
    """N × C × H × W images in [0, 1] tiled with 1-pixel gaps, as PNG bytes."""
    n, channels, height, width = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.ones((channels, rows * (height + 1) + 1, columns * (width + 1) + 1), dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[
            :, 1 + r * (height + 1) : 1 + r * (height + 1) + height, 1 + c * (width + 1) : 1 + c * (width + 1) + width
        ] = image
    return image_png(grid, zoom)


def image_png(image: np.ndarray, zoom: int = 1) -> bytes:
    """One C × H × W image in [0, 1] as PNG bytes, each pixel `zoom`× enlarged."""
    import io

    from PIL import Image

    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    pixels = pixels.repeat(zoom, axis=1).repeat(zoom, axis=2)
    picture = Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def load_generator_run(path: str | Path) -> GeneratorRun:
    from safetensors.torch import load_file

    path = Path(path)
    config, info = read_finished_run(path)
    model = build_model(info["type"], ImageGenerationSpec(**info["input_spec"]), 0, info["options"])
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    model.eval()
    preprocessing = json.loads((path / "preprocessing.json").read_text())
    return GeneratorRun(path, config, model, info, preprocessing)
