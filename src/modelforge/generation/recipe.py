"""The generation recipe: images (+ optional labels) → split → generator → loop → run directory.

Readable top to bottom: read the image column (and `data.target` when the model is
conditioned on it), scale pixels to [0, 1], split, build the registered model, run one of the
two loops (VAE: minimise the negative ELBO, keep the best validation epoch; GAN: alternate
hinge-loss discriminator and generator steps), then write the run directory. With
`generation.classifier` set, the finished generator's samples are scored by that classifier
run and the figures land in eval.json beside the test loss.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modelforge.config import GenerationConfig, RunConfig, config_to_yaml
from modelforge.data.readers import read_data
from modelforge.errors import DataError
from modelforge.files import append_jsonl, atomic_write_json, atomic_write_text
from modelforge.models import build_model
from modelforge.models.generative import ConditionalGAN, ConditionalVAE, ImageGenerationSpec
from modelforge.run import default_run_dir, environment_record


# ----------------------------------------------------------------------------- data
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
    source = config.data.train if isinstance(config.data.train, str) else config.data.train[0]
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


# ----------------------------------------------------------------------------- loops
def vae_epoch(model: ConditionalVAE, batches: list[tuple], optimizer: torch.optim.Optimizer) -> dict[str, float]:
    totals = {"train_loss": 0.0, "train_reconstruction": 0.0, "train_kl": 0.0}
    for images, labels in batches:
        loss, parts = model.loss(images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        totals["train_loss"] += loss.item() / len(batches)
        totals["train_reconstruction"] += parts["reconstruction"] / len(batches)
        totals["train_kl"] += parts["kl"] / len(batches)
    return totals


def gan_epoch(
    model: ConditionalGAN,
    batches: list[tuple],
    optimizers: tuple[torch.optim.Optimizer, ...],
    generator: torch.Generator,
) -> dict[str, float]:
    """One pass: per batch, a discriminator hinge step on real vs generated, then a generator step."""
    d_optimizer, g_optimizer = optimizers
    totals = {"train_d_loss": 0.0, "train_g_loss": 0.0, "train_d_real": 0.0}
    for images, labels in batches:
        z = torch.randn(len(images), model.latent, generator=generator)
        fake = model.generator(z, labels)
        real_score = model.discriminator(images, labels)
        fake_score = model.discriminator(fake.detach(), labels)
        d_loss = torch.relu(1 - real_score).mean() + torch.relu(1 + fake_score).mean()
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        g_loss = -model.discriminator(fake, labels).mean()
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
        totals["train_d_loss"] += d_loss.item() / len(batches)
        totals["train_g_loss"] += g_loss.item() / len(batches)
        totals["train_d_real"] += real_score.mean().item() / len(batches)
    return totals


@torch.no_grad()
def negative_elbo(model: ConditionalVAE, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
    """Mean negative ELBO per image over a split (one z sample each, fixed seed)."""
    model.eval()
    torch.manual_seed(0)
    loss, parts = model.loss(images, labels)
    model.train()
    return {"loss": loss.item(), **parts}


def batches_of(data: ImageSet, rows: np.ndarray, size: int, generator: torch.Generator) -> list[tuple]:
    order = rows[torch.randperm(len(rows), generator=generator).numpy()]
    return [tensors(data, order[i : i + size]) for i in range(0, len(order), size)]


# ----------------------------------------------------------------------------- recipe
def train_generator(config: RunConfig, out: str | Path | None = None, show_progress: bool = False) -> Any:
    """Train as the config says; returns the loaded GeneratorRun."""
    from modelforge.generation.run import load_generator_run, save_generator_run

    started = time.time()
    settings = config.generation or GenerationConfig()
    if isinstance(config.train.threads, int):
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.seed)
    data = read_images(config)
    rows = split_rows(len(data.images), config)
    _, channels, height, width = data.images.shape
    spec = ImageGenerationSpec(channels, height, width, len(data.classes))
    model = build_model(config.model.type, spec, 0, config.model.options())
    run_dir = Path(out) if out else default_run_dir(config.name or f"generation-{config.model.type}")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise DataError(f"{run_dir}: output directory exists and is not empty; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", config_to_yaml(config))

    generator = torch.Generator().manual_seed(config.seed)
    betas = tuple(config.train.betas)
    if isinstance(model, ConditionalGAN):
        optimizers = (
            torch.optim.Adam(model.discriminator.parameters(), lr=config.train.lr, betas=betas),
            torch.optim.Adam(model.generator.parameters(), lr=config.train.lr, betas=betas),
        )
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, betas=betas)
    best: tuple[float, int, dict[str, Any]] | None = None
    for epoch in range(1, config.train.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        batches = batches_of(data, rows["train"], config.train.batch_size, generator)
        if isinstance(model, ConditionalGAN):
            row: dict[str, Any] = {"epoch": epoch, **gan_epoch(model, batches, optimizers, generator)}
        else:
            row = {"epoch": epoch, **vae_epoch(model, batches, optimizer)}
            if len(rows["valid"]):
                row.update({f"valid_{k}": v for k, v in negative_elbo(model, *tensors(data, rows["valid"])).items()})
        row["seconds"] = time.perf_counter() - epoch_start
        append_jsonl(run_dir / "metrics.jsonl", row)
        if show_progress:
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        watched = row.get("valid_loss")
        if config.train.keep_best and watched is not None and (best is None or watched < best[0]):
            best = (watched, epoch, copy.deepcopy(model.state_dict()))
    if best is not None:
        model.load_state_dict(best[2])
    model.eval()

    evaluation: dict[str, Any] = {"split": "test", "n": len(rows["test"])}
    if isinstance(model, ConditionalVAE) and len(rows["test"]):
        evaluation.update({f"test_{k}": v for k, v in negative_elbo(model, *tensors(data, rows["test"])).items()})
    evaluation.update(best_epoch=best[1] if best else config.train.epochs, epochs=config.train.epochs)
    preprocessing = {
        "task": "generation",
        "image_column": image_column(config),
        "classes": data.classes,
        "layout": data.layout,
        "scale": data.scale,
    }
    info = {"type": config.model.type, "options": config.model.options(), "output_dim": 0, "input_spec": asdict(spec)}
    files = config.data.train if isinstance(config.data.train, list) else [config.data.train]
    save_generator_run(run_dir, model, preprocessing, info, environment_record(files))
    run = load_generator_run(run_dir)
    if settings.classifier:
        from modelforge.generation.score import score_generator

        real = data.images[rows["test"]] if len(rows["test"]) else data.images[rows["train"]]
        evaluation.update(score_generator(run, settings.classifier, settings.samples, settings.temperature, real))
    evaluation["train_seconds"] = round(time.time() - started, 3)
    atomic_write_json(run_dir / "eval.json", evaluation)
    return run
