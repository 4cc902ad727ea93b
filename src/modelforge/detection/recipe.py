"""The detection recipe: COCO JSON / YOLO folder → split → letterboxed images → detector → loop → run directory.

Readable top to bottom: read and check the annotations, split the images (or take data.valid and
data.test), letterbox every image to `detection.image_size` once (uint8, in memory), build the
registered detector, then for each epoch: a seeded order → box-aware augmentation of each image →
forward (bf16 autocast when train.precision resolves to bf16) → centre-heatmap focal loss + GIoU +
offset L1 in fp32 → backward → clip → lr (warm-up, then train.schedule) →
step; at the epoch's end pycocotools' mAP on the validation images, the best-mAP epoch's weights kept.
At the end the test split (else valid) is scored and the run directory is written, model.json last.

Checkpoints, `--resume` and SIGTERM / SIGINT work as for the other recipes (training/checkpoint.py): the
order and every augmentation draw come from one checkpointed generator, so a run killed at any moment
and resumed ends with the weights, bitwise, of the run that never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelforge.config import DetectionConfig, RunConfig, TrainConfig
from modelforge.detection.augment import augment
from modelforge.detection.boxes import detection_loss
from modelforge.detection.data import (
    DetectionSet,
    Letterbox,
    image_channels,
    kept_labels,
    load_images,
    read_detection_set,
    split_rows,
)
from modelforge.detection.metrics import coco_metrics
from modelforge.detection.run import DetectorRun, detect_pixels, load_detector_run, settings_of
from modelforge.errors import ConfigError
from modelforge.files import append_jsonl, atomic_write_bytes, atomic_write_json
from modelforge.inference import autocast_context, set_cpu_threads
from modelforge.models import build_model
from modelforge.models.detector import DetectionSpec, input_multiple
from modelforge.run import finish_run_directory, start_run_files
from modelforge.training.checkpoint import Checkpoint, TrainingParts, TrainingState, open_checkpointer, storable_tensors
from modelforge.training.distributed import Topology
from modelforge.training.interrupt import StopSignal
from modelforge.training.loop import LoopHook, StepInfo, TrainingError, close_epoch, end_training
from modelforge.training.optim import SCHEDULES, build_optimizer
from modelforge.training.probe import batch_signature, settle_auto
from modelforge.training.resume import open_run_directory
from modelforge.training.threads import ThreadChooser


@dataclass
class Split:
    """One split ready for the loop: the annotations, letterboxed pixels, boxes in those pixels, labels."""

    data: DetectionSet
    pixels: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    fits: list[Letterbox]

    @classmethod
    def load(cls, data: DetectionSet, side: int, channels: int) -> Split:
        pixels, boxes, fits = load_images(data, side, channels)
        return cls(data, pixels, boxes, kept_labels(data), fits)


def read_splits(config: RunConfig) -> tuple[DetectionSet, DetectionSet, DetectionSet | None]:
    """train, valid and test sets: data.valid / data.test when given, else split from data.train by image."""
    train = read_detection_set(str(config.data.train))
    classes, ids = train.classes, train.category_ids
    valid = read_detection_set(str(config.data.valid), classes, ids) if config.data.valid else None
    test = read_detection_set(str(config.data.test), classes, ids) if config.data.test else None
    split = config.data.split
    rows = split_rows(
        len(train),
        0.0 if valid is not None else split.valid,
        0.0 if test is not None else split.test,
        split.seed if split.seed is not None else config.seed,
    )
    if valid is None:
        valid = train.take(rows["valid"]) if len(rows["valid"]) else None
    if test is None and len(rows["test"]):
        test = train.take(rows["test"])
    if valid is None:
        raise ConfigError("data.split.valid: detection keeps the best epoch by validation mAP; give a share > 0")
    return train.take(rows["train"]), valid, test


def training_batch(
    split: Split, rows: np.ndarray, settings: DetectionConfig, generator: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Augmented images (N × C × S × S floats in [0, 1]) and each one's boxes and labels."""
    images, boxes, labels = [], [], []
    for row in rows:
        image = torch.from_numpy(split.pixels[row]).float() / 255.0
        box, label = torch.from_numpy(split.boxes[row]), torch.from_numpy(split.labels[row])
        image, box, label = augment(image, box, label, settings.augment, generator)
        images.append(image)
        boxes.append(box)
        labels.append(label)
    return torch.stack(images), boxes, labels


def split_metrics(model: nn.Module, split: Split, settings: DetectionConfig) -> dict[str, Any]:
    """pycocotools mAP of the model on a loaded split (every box: no score threshold)."""
    found = detect_pixels(model, split.pixels, split.fits, settings, 0.0)
    ids = split.data.category_ids
    detections = [
        {"image_id": i + 1, "category_id": ids[int(label)], "bbox": [float(v) for v in box], "score": float(score)}
        for i, d in enumerate(found)
        for box, score, label in zip(d.boxes, d.scores, d.labels, strict=True)
    ]
    return coco_metrics(split.data, detections)


# ----------------------------------------------------------------------------- the loop
def fit_detector(
    model: nn.Module,
    train: Split,
    valid: Split,
    config: RunConfig,
    *,
    log_epoch: Callable[[dict[str, Any]], None],
    topology: Topology,
    resume: Checkpoint | None = None,
    hooks: Sequence[LoopHook] = (),
) -> TrainingState:
    """Train for train.epochs (or train.max_steps); returns the loop state (history, best epoch by valid_map)."""
    cfg: TrainConfig = config.train
    settings = settings_of(config)
    n_classes = len(train.data.classes)
    optimizer = build_optimizer(model, cfg)
    sampler, epoch_start = torch.Generator().manual_seed(config.seed), torch.Generator()
    parts = TrainingParts(model, optimizer, generators={"sampler": sampler, "epoch_start": epoch_start})
    state = resume.restore(parts, topology) if resume is not None else TrainingState()
    size = cfg.batch_size
    batches_per_epoch = math.ceil(len(train.pixels) / size)
    total = cfg.max_steps or batches_per_epoch * cfg.epochs
    lr_factor = SCHEDULES.get(cfg.schedule)(cfg, total, batches_per_epoch)
    chooser = ThreadChooser.for_config(cfg, torch.device("cpu"))
    autocast = autocast_context(cfg.precision, torch.device("cpu"))  # bf16 when the probe found it pays

    for epoch in range(state.epoch, cfg.epochs + 1):
        started = time.perf_counter()
        model.train()
        if state.batch == 0:
            epoch_start.set_state(sampler.get_state())
            order = torch.randperm(len(train.pixels), generator=sampler).numpy()
        else:  # resumed mid-epoch: the order drawn at the epoch's start (the sampler has moved past it)
            order = torch.randperm(len(train.pixels), generator=torch.Generator().set_state(epoch_start.get_state()))
            order = order.numpy()
        for index in range(state.batch, batches_per_epoch):
            if cfg.max_steps and state.steps >= cfg.max_steps:
                break
            with chooser.timed(state.steps):
                draws = torch.Generator().manual_seed(int(torch.randint(2**62, (), generator=sampler)))
                images, boxes, labels = training_batch(train, order[index * size : (index + 1) * size], settings, draws)
                lr = cfg.lr * lr_factor(state.steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast:
                    raw = model(images)
                loss, losses = detection_loss(raw.float(), boxes, labels, n_classes)  # the losses in fp32
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingError(
                        f"loss is {loss_value} at step {state.steps + 1}; lower train.lr or add train.grad_clip"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                for name, value in {"train_loss": loss_value, **losses}.items():
                    state.sums[name] = state.sums.get(name, 0.0) + value
                state.seen += 1
                state.batch, state.steps = index + 1, state.steps + 1
                for hook in hooks:
                    hook.after_step(parts, state, StepInfo(loss_value, None, len(images), lr))

        row: dict[str, Any] = {"epoch": epoch, "step": state.steps}
        row.update({name: value / max(state.seen, 1) for name, value in state.sums.items()})
        scored = split_metrics(model, valid, settings)
        row.update({f"valid_{k}": scored[k] for k in ("map", "map50", "map75")})
        row["lr"] = optimizer.param_groups[0]["lr"]
        row["seconds"] = time.perf_counter() - started
        if chooser.measures:
            row["threads"] = chooser.chosen
        close_epoch(
            parts, state, row, hooks, log_epoch, row["valid_map"], lower_is_better=False, keep_weights=cfg.keep_best
        )
        if cfg.max_steps and state.steps >= cfg.max_steps:
            break

    end_training(model, parts, state, hooks)
    return state


# ----------------------------------------------------------------------------- recipe
def train_detector(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    show_progress: bool = False,
    resume: str | Path | None = None,
    force: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> DetectorRun:
    """Train as the config says; returns the loaded DetectorRun (`resume`, `force`: as for every recipe;
    `on_epoch(row)` after each epoch's evaluation, e.g. `modelforge tune` reporting to its study)."""
    started = time.time()
    set_cpu_threads(config.train.threads)
    settings = settings_of(config)
    options = config.model.options()
    multiple = input_multiple(options.get("widths"))
    if settings.image_size % multiple:
        raise ConfigError(
            f"detection.image_size: must be a multiple of {multiple} for {len(options.get('widths') or [0] * 3)} "
            f"backbone stages, got {settings.image_size}"
        )
    train, valid, test = read_splits(config)
    channels = image_channels([*train.files, *valid.files])
    spec = DetectionSpec(channels, settings.image_size, len(train.classes))
    torch.manual_seed(config.seed)
    model = build_model(config.model.type, spec, 0, options)
    model_info = {
        "type": config.model.type,
        "options": options,
        "output_dim": 0,
        "input_spec": asdict(spec),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    preprocessing = {
        "task": config.task,
        "classes": train.classes,
        "category_ids": train.category_ids,
        "channels": channels,
        "image_size": settings.image_size,
        "letterbox": "aspect kept, centred, grey padding; pixels / 255",
    }
    run_dir, checkpoint = open_run_directory(config, out, resume, force)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        splits = (Split.load(train, spec.size, channels), Split.load(valid, spec.size, channels), test)
        return _train_into(
            run_dir, config, splits, model, model_info, preprocessing, show_progress, started, checkpoint, on_epoch
        )
    except BaseException:
        # a run that never finished keeps what it logged (and its checkpoints) but is marked incomplete
        (run_dir / "model.json").unlink(missing_ok=True)
        raise


def _train_into(
    run_dir: Path,
    config: RunConfig,
    splits: tuple[Split, Split, DetectionSet | None],
    model: nn.Module,
    model_info: dict[str, Any],
    preprocessing: dict[str, Any],
    show_progress: bool,
    started: float,
    checkpoint: Checkpoint | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> DetectorRun:
    from safetensors.torch import save

    from modelforge.training.recipe import start_environment
    from modelforge.training.tracking import open_trackers

    train, valid, test = splits
    topology = Topology(device=torch.device("cpu"))
    environment = start_environment(run_dir, config, topology, checkpoint)
    metrics_path = start_run_files(run_dir, config, environment, checkpoint.history if checkpoint else [])
    atomic_write_json(run_dir / "preprocessing.json", preprocessing)
    settings, n_classes = settings_of(config), len(train.data.classes)
    rows = np.arange(min(config.train.batch_size, len(train.pixels)))
    images, boxes, labels = training_batch(train, rows, settings, torch.Generator().manual_seed(0))
    config = settle_auto(
        run_dir,
        config,
        model,
        topology,
        lambda: detection_loss(model(images).float(), boxes, labels, n_classes)[0],
        batch_signature(images),
        environment,
        show_progress,
    )

    def log_epoch(row: dict[str, Any]) -> None:
        append_jsonl(metrics_path, row)
        if on_epoch is not None:
            on_epoch(row)
        if show_progress:
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

    steps_per_epoch = math.ceil(len(train.pixels) / config.train.batch_size)
    with StopSignal() as stop:
        checkpointer = open_checkpointer(run_dir, topology, config.train, stop, checkpoint)
        purge_step = checkpoint.steps + 1 if checkpoint else None  # a resumed run's curves have no doubles
        trackers = open_trackers(run_dir, config.model_dump(mode="json"), steps_per_epoch, purge_step)
        hooks: list[Any] = [*trackers, checkpointer]  # logs first, so a stop raised by the checkpointer comes after
        try:
            outcome = fit_detector(
                model, train, valid, config, log_epoch=log_epoch, topology=topology, resume=checkpoint, hooks=hooks
            )
        finally:
            for hook in hooks:
                hook.close()
    model.eval()
    atomic_write_bytes(run_dir / "model.safetensors", save(storable_tensors(model.state_dict())))

    run = DetectorRun(run_dir, config, model, model_info, preprocessing)
    scored, split = (test, "test") if test is not None else (valid.data, "valid")
    scoring_started = time.perf_counter()
    evaluation: dict[str, Any] = {**run.evaluate(scored), "split": split}
    evaluation.update(
        scoring_images_per_second=len(scored) / max(time.perf_counter() - scoring_started, 1e-9),  # read+detect+score
        best_epoch=outcome.best_epoch,
        best_valid_map=outcome.best_value,
        epochs=len(outcome.history),
        steps=outcome.steps,
        train_images=len(train.pixels),
        train_boxes=int(sum(len(b) for b in train.boxes)),
        train_seconds=round(time.time() - started, 3),
    )
    finish_run_directory(run_dir, evaluation, environment, model_info)
    return load_detector_run(run_dir)
