"""The supervised recipe: data → split → fitted preprocessing → model → loop → run directory.

Everything that can fail on user input (config, files, columns) is checked before the run
directory is created, so a bad input leaves nothing behind.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modelforge.config import RunConfig, config_to_yaml
from modelforge.data.preprocess import Preprocessor, apply_column_policies, fit_preprocessor
from modelforge.data.readers import read_data
from modelforge.data.split import split_indices
from modelforge.errors import DataError
from modelforge.evaluate.metrics import classification_metrics, regression_metrics
from modelforge.models import build_model
from modelforge.run import (
    Run,
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    default_run_dir,
    environment_record,
    load_run,
    outputs_to_predictions,
)
from modelforge.train.loop import Tensors, fit, forward_in_batches
from modelforge.train.optim import LOSSES, default_loss, output_size


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_splits(config: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Train/valid/test frames: explicit files where given, the rest split from train."""
    data = config.data
    files = data.train if isinstance(data.train, list) else [data.train]
    frame = pd.concat([read_data(f, data.bad_rows) for f in files], ignore_index=True)
    frame = apply_column_policies(frame, data.drop, data.hash)
    valid = apply_column_policies(read_data(data.valid, data.bad_rows), data.drop, data.hash) if data.valid else None
    test = apply_column_policies(read_data(data.test, data.bad_rows), data.drop, data.hash) if data.test else None
    if data.target and data.target in frame.columns:
        missing = frame[data.target].isna()
        if missing.any():
            if data.bad_rows == "error":
                rows = list(np.flatnonzero(missing.to_numpy())[:5] + 1)
                raise DataError(f"target column {data.target!r}: missing at rows {rows}")
            frame = frame[~missing].reset_index(drop=True)
    valid_share = 0.0 if valid is not None else data.split.valid
    test_share = 0.0 if test is not None else data.split.test
    labels = None
    if config.task == "classification" and data.split.stratify and data.target in frame.columns:
        labels = frame[data.target].astype(str).to_numpy()
        counts = pd.Series(labels).value_counts()
        if counts.min() < 3:
            labels = None  # too few rows per class to stratify
    seed = config.seed if data.split.seed is None else data.split.seed
    train_idx, valid_idx, test_idx = split_indices(len(frame), valid_share, test_share, seed, labels)
    if valid is None and len(valid_idx):
        valid = frame.iloc[valid_idx].reset_index(drop=True)
    if test is None and len(test_idx):
        test = frame.iloc[test_idx].reset_index(drop=True)
    return frame.iloc[train_idx].reset_index(drop=True), valid, test


def to_tensors(preprocessor: Preprocessor, frame: pd.DataFrame, with_target: bool = True) -> Tensors:
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in preprocessor.transform_inputs(frame).items()}
    if with_target:
        tensors["target"] = torch.from_numpy(preprocessor.transform_target(frame))
    return tensors


def class_weights(target: torch.Tensor, n_classes: int) -> torch.Tensor:
    counts = torch.bincount(target, minlength=n_classes).float().clamp(min=1)
    return counts.sum() / (n_classes * counts)


def make_scorer(
    task: str, loss_fn: torch.nn.Module, preprocessor: Preprocessor, precision: str, batch_size: int
) -> Any:
    """Validation metrics for one epoch: loss plus the task's headline metrics."""

    def score(model: torch.nn.Module, tensors: Tensors) -> dict[str, float]:
        inputs = {k: v for k, v in tensors.items() if k != "target"}
        raw = forward_in_batches(model, inputs, batch_size, precision)
        target = tensors["target"]
        with torch.no_grad():
            loss = float(loss_fn.to("cpu")(raw, target))
        values = outputs_to_predictions(raw, task, preprocessor)
        if task == "regression":
            truth = preprocessor.target_encoder.inverse(target.double().numpy())
            metrics = regression_metrics(truth, values)
            return {"valid_loss": loss, "valid_rmse": metrics["rmse"], "valid_r2": metrics["r2"]}
        predicted = values.argmax(axis=1)
        accuracy = float((predicted == target.numpy()).mean())
        return {"valid_loss": loss, "valid_accuracy": accuracy}

    return score


def batch_augmenter(preprocessor: Preprocessor) -> Any:
    """The train-time transform for the image input, if the image feature asks for one."""
    from modelforge.data.augment import image_augmenter

    for encoder in preprocessor.encoders:
        if encoder.kind == "image":
            augment_images = image_augmenter(**encoder.augment)
            if augment_images is not None:
                return lambda batch: {**batch, "image": augment_images(batch["image"])}
    return None


EpochHook = Callable[[dict[str, Any]], None]


def train(
    config: RunConfig,
    out: str | Path | None = None,
    show_progress: bool = True,
    on_epoch: EpochHook | None = None,
) -> Run:
    """Train a model as the config says; returns the loaded run from its new directory.

    `on_epoch` sees each epoch's metrics row after it is logged (tuning reports and prunes
    there; an exception it raises stops training).
    """
    started = time.time()
    seed_everything(config.seed)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)

    train_frame, valid_frame, test_frame = load_splits(config)
    preprocessor = fit_preprocessor(config, train_frame)
    train_set = to_tensors(preprocessor, train_frame)
    valid_set = to_tensors(preprocessor, valid_frame) if valid_frame is not None else None
    test_set = to_tensors(preprocessor, test_frame) if test_frame is not None else None

    n_classes = len(preprocessor.classes)
    loss_name = config.train.loss or default_loss(config.task, n_classes)
    if config.task == "regression" and loss_name in ("bce", "cross_entropy"):
        raise DataError(f"train.loss: {loss_name} needs task classification")
    if config.task == "classification" and loss_name in ("mse", "huber"):
        raise DataError(f"train.loss: {loss_name} needs task regression")
    if loss_name == "bce" and n_classes != 2:
        raise DataError(f"train.loss: bce needs two classes, the target has {n_classes}")
    weight = class_weights(train_set["target"], n_classes) if config.train.class_weights else None
    loss_fn = LOSSES.get(loss_name)(weight=weight, label_smoothing=config.train.label_smoothing)
    output_dim = output_size(config.task, n_classes, loss_name)
    spec = preprocessor.input_spec()
    seed_everything(config.seed)
    model = build_model(config.model.type, spec, output_dim, config.model.options())
    model_info = {
        "type": config.model.type,
        "options": config.model.options(),
        "output_dim": output_dim,
        "input_spec": asdict(spec),
        "parameters": sum(p.numel() for p in model.parameters()),
    }

    run_dir = Path(out) if out else default_run_dir(config.name or f"{config.task}-{config.model.type}")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise DataError(f"{run_dir}: output directory exists and is not empty; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train_into(
            run_dir,
            config,
            preprocessor,
            model,
            loss_fn,
            (train_set, valid_set, test_set),
            model_info,
            show_progress,
            on_epoch,
            started,
        )
    except BaseException:
        # a run that never finished keeps what it logged but is marked incomplete
        (run_dir / "model.json").unlink(missing_ok=True)
        raise


def _train_into(
    run_dir: Path,
    config: RunConfig,
    preprocessor: Preprocessor,
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    splits: tuple[Tensors, Tensors | None, Tensors | None],
    model_info: dict[str, Any],
    show_progress: bool,
    on_epoch: EpochHook | None,
    started: float,
) -> Run:
    from safetensors.torch import save_file

    train_set, valid_set, test_set = splits

    data_files = config.data.train if isinstance(config.data.train, list) else [config.data.train]
    environment = environment_record([*data_files, config.data.valid or "", config.data.test or ""])
    atomic_write_text(run_dir / "config.yaml", config_to_yaml(config))
    atomic_write_json(run_dir / "preprocessing.json", preprocessor.to_json())
    atomic_write_json(run_dir / "environment.json", environment)
    metrics_path = run_dir / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)

    def log_epoch(row: dict[str, Any]) -> None:
        append_jsonl(metrics_path, row)
        if on_epoch is not None:
            on_epoch(row)

    scorer = make_scorer(config.task, loss_fn, preprocessor, config.train.precision, 1024)
    outcome = fit(
        model,
        train_set,
        valid_set,
        config.train,
        loss_fn,
        scorer,
        seed=config.seed,
        log_epoch=log_epoch,
        show_progress=show_progress,
        augment=batch_augmenter(preprocessor),
    )

    model.to("cpu")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    temp = run_dir / ".model.safetensors.tmp"
    save_file(state, str(temp))
    temp.replace(run_dir / "model.safetensors")

    held_out = test_set if test_set is not None else valid_set
    evaluation: dict[str, Any] = {"split": "test" if test_set is not None else "valid"}
    if held_out is not None:
        inputs = {k: v for k, v in held_out.items() if k != "target"}
        values = outputs_to_predictions(
            forward_in_batches(model, inputs, precision=config.train.precision), config.task, preprocessor
        )
        if config.task == "regression":
            truth = preprocessor.target_encoder.inverse(held_out["target"].double().numpy())
            evaluation.update(regression_metrics(truth, values))
        else:
            evaluation.update(classification_metrics(held_out["target"].numpy(), values, preprocessor.classes))
    evaluation.update(
        best_epoch=outcome.best_epoch,
        epochs=len(outcome.history),
        steps=outcome.steps,
        stopped_early=outcome.stopped_early,
        train_seconds=round(time.time() - started, 3),
    )
    atomic_write_json(run_dir / "eval.json", evaluation)
    environment["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(run_dir / "environment.json", environment)
    atomic_write_json(run_dir / "model.json", model_info)  # written last: its presence marks a finished run
    return load_run(run_dir)
