"""The supervised recipe: data → split → fitted preprocessing → model → loop → run directory.

Everything that can fail on user input (config, files, columns) is checked before the run
directory is created, so a bad input leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modelforge.config import RunConfig, config_to_yaml
from modelforge.data.preprocess import Preprocessor, apply_column_policies, fit_preprocessor, resolve_features
from modelforge.data.readers import data_files, read_data, train_files
from modelforge.data.row_hashes import ROW_HASHES_FILE, save_training_rows
from modelforge.data.split import balanced_rows, column_parts, split_indices
from modelforge.decision import (
    DECISION_FILE,
    Decision,
    LabelSetDecision,
    fit_decision,
    fit_label_set_decision,
    positive_index,
)
from modelforge.errors import ConfigError, DataError
from modelforge.evaluate.metrics import classification_metrics, label_set_metrics, label_set_scores, regression_metrics
from modelforge.files import append_jsonl, atomic_write_bytes, atomic_write_json
from modelforge.finetune.lora import save_adapter
from modelforge.finetune.weights import parameter_counts, start_from
from modelforge.inference import forward_in_batches, outputs_to_predictions, pick_device, set_cpu_threads
from modelforge.models import build_model
from modelforge.models.ensemble import ensemble_loss, ensemble_size
from modelforge.models.registry import check_model_features
from modelforge.run import (
    Run,
    check_empty_output,
    default_run_dir,
    environment_record,
    finish_run_directory,
    load_decision,
    load_run,
    start_run_files,
)
from modelforge.tasks import predicts_label_sets, predicts_labels, predicts_values
from modelforge.training.checkpoint import Checkpoint, load_latest, open_checkpointer, storable_tensors
from modelforge.training.distributed import Topology, full_model_state, is_sharded, teardown
from modelforge.training.distributed import setup as setup_distributed
from modelforge.training.interrupt import StopSignal
from modelforge.training.loop import Tensors, TrainingError, fit
from modelforge.training.mixup import check_blendable
from modelforge.training.optim import LOSSES, default_loss, output_size
from modelforge.training.probe import batch_signature, settle_auto
from modelforge.training.resume import check_same_run, find_run_to_resume


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_splits(config: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Train/valid/test frames: explicit files where given, the rest split from train."""
    data = config.data
    frame = pd.concat([read_data(f, data.bad_rows) for f in train_files(data)], ignore_index=True)
    from modelforge.data.privacy import warn_personal_columns

    warn_personal_columns(frame, skip=[*data.drop, *data.hash])  # e-mail / phone columns left as they are
    frame = apply_column_policies(frame, data.drop, data.hash)
    valid = apply_column_policies(read_data(data.valid, data.bad_rows), data.drop, data.hash) if data.valid else None
    test = apply_column_policies(read_data(data.test, data.bad_rows), data.drop, data.hash) if data.test else None
    if data.target and data.target in frame.columns and not predicts_label_sets(config.task):
        missing = frame[data.target].isna()  # (multilabel: an empty cell is the empty set of labels)
        if missing.any():
            # a row without a label cannot be learned from; leaving it out is what every user expects,
            # but say so rather than shrink the data silently
            rows = ", ".join(str(int(i) + 1) for i in np.flatnonzero(missing.to_numpy())[:5])
            warnings.warn(
                f"target column {data.target!r} is empty in {int(missing.sum())} of {len(frame)} rows "
                f"(rows {rows}{' …' if missing.sum() > 5 else ''}); those rows are left out",
                stacklevel=2,
            )
            frame = frame[~missing].reset_index(drop=True)
    if data.split.column:
        frame, named_valid, named_test = split_by_column(frame, data.split.column)
        valid = valid if valid is not None else named_valid
        test = test if test is not None else named_test
    valid_share = 0.0 if valid is not None else data.split.valid
    test_share = 0.0 if test is not None else data.split.test
    labels = None
    if predicts_labels(config.task) and data.split.stratify and data.target in frame.columns:
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


def split_by_column(frame: pd.DataFrame, column: str) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Rows marked train / valid / test in `column` (data.split.column); absent parts are None."""
    names = column_parts(frame, column)
    frame = frame.drop(columns=[column])  # bookkeeping, not an input
    parts = {name: frame[(names == name).to_numpy()].reset_index(drop=True) for name in ("train", "valid", "test")}
    if parts["train"].empty:
        raise DataError(f"data.split.column {column!r}: no rows marked train")
    valid, test = (parts[name] if len(parts[name]) else None for name in ("valid", "test"))
    return parts["train"], valid, test


def check_inferred_features(config: RunConfig, frame: pd.DataFrame) -> None:
    """Features inferred from the data must suit the model (listed ones were checked with the config):
    a one-line ConfigError before fitting, not a traceback from the forward pass."""
    if not config.features:
        inferred = resolve_features(config, frame)
        check_model_features(config.model.type, [(f.name, f.type) for f in inferred], inferred=True)


def to_tensors(preprocessor: Preprocessor, frame: pd.DataFrame, with_target: bool = True) -> Tensors:
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in preprocessor.transform_inputs(frame).items()}
    if with_target:
        tensors["target"] = torch.from_numpy(np.array(preprocessor.transform_target(frame)))
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
        if predicts_values(task):
            truth = preprocessor.target_encoder.inverse(target.double().numpy())
            metrics = regression_metrics(truth, values)
            return {"valid_loss": loss, "valid_rmse": metrics["rmse"], "valid_r2": metrics["r2"]}
        if predicts_label_sets(task):
            scores = label_set_scores(target.numpy() > 0, values >= 0.5, preprocessor.classes)
            return {"valid_loss": loss, "valid_micro_f1": scores["micro_f1"]}
        predicted = values.argmax(axis=1)
        accuracy = float((predicted == target.numpy()).mean())
        return {"valid_loss": loss, "valid_accuracy": accuracy}

    return score


def check_decision(config: RunConfig, classes: list[Any], has_valid: bool) -> None:
    """`decision:` and `calibrate:` are fitted on the validation split; the threshold and isotonic
    calibration need two classes. Checked before training, so a bad request costs nothing."""
    if config.decision is None and config.calibrate is None:
        return
    asked = "decision" if config.decision is not None else "calibrate"
    if not has_valid:
        raise ConfigError(f"{asked}: needs a validation split (data.valid, or data.split.valid > 0)")
    binary_only = "decision" if config.decision is not None else "calibrate: isotonic"
    if predicts_label_sets(config.task):  # one threshold per label, each label its own positive class
        if config.decision is not None and config.decision.positive is not None:
            raise ConfigError("decision.positive: not used by task multilabel (each label is its own positive class)")
        return
    if len(classes) != 2 and (config.decision is not None or config.calibrate == "isotonic"):
        raise ConfigError(
            f"{binary_only}: needs two classes, the target has {len(classes)} "
            "(calibrate: temperature works for any number)"
        )
    if config.decision is not None:
        positive_index(classes, config.decision.positive)


def fit_run_decision(
    config: RunConfig, model: torch.nn.Module, valid_set: Tensors, preprocessor: Preprocessor
) -> Decision | LabelSetDecision:
    """Calibration and threshold fitted on the validation split's probabilities (never the test split's)."""
    inputs = {k: v for k, v in valid_set.items() if k != "target"}
    probabilities = outputs_to_predictions(
        forward_in_batches(model, inputs, precision=config.train.precision), config.task, preprocessor
    )
    decision = config.decision
    if predicts_label_sets(config.task):
        assert decision is not None, "a multilabel run fits thresholds only for a decision: section"
        target = valid_set["target"].numpy()
        return fit_label_set_decision(target, probabilities, preprocessor.classes, decision.objective())
    return fit_decision(
        valid_set["target"].numpy(),
        probabilities,
        preprocessor.classes,
        decision.objective() if decision is not None else None,
        config.calibrate,
        decision.positive if decision is not None else None,
    )


def batch_augmenter(preprocessor: Preprocessor) -> Any:
    """The train-time transform for the image or audio input, if its feature asks for one."""
    from modelforge.data.augment import image_augmenter

    for encoder in preprocessor.encoders:
        if encoder.kind == "image":
            augment_images = image_augmenter(**encoder.augment)
            if augment_images is not None:
                return lambda batch: {**batch, "image": augment_images(batch["image"])}
        if encoder.kind == "audio":
            from modelforge.data.audio import audio_batch_augmenter

            return audio_batch_augmenter(encoder.spectrogram_augment)
    return None


def recorded_variants(preprocessor: Preprocessor, frame: pd.DataFrame, seed: int) -> Tensors:
    """`audio_variants` (N×copies×1×bands×frames) for the training rows when the audio feature asks for
    recording shifts (`augment.copies`); the batch augmenter picks one rendering per row, or the clip itself."""
    for encoder in preprocessor.encoders:
        if encoder.kind == "audio":
            variants = encoder.augmented(frame[encoder.name], seed)
            if variants is not None:
                return {"audio_variants": torch.from_numpy(variants)}
    return {}


EpochHook = Callable[[dict[str, Any]], None]


def train(
    config: RunConfig,
    out: str | Path | None = None,
    show_progress: bool = True,
    on_epoch: EpochHook | None = None,
    resume: str | Path | None = None,
    force: bool = False,
) -> Run:
    """Train a model as the config says; returns the loaded run from its new directory.

    `on_epoch` sees each epoch's metrics row after it is logged (tuning reports and prunes
    there; an exception it raises stops training). `resume` continues a run from its newest
    good checkpoint: a run directory, or "auto" (see training/resume.py); `force` lets harmless
    config changes (more epochs) through. Under torchrun every rank calls this; rank 0 writes.
    """
    started = time.time()
    seed_everything(config.seed)
    set_cpu_threads(config.train.threads)  # "auto": chosen by the probe in `_train_into`; "adaptive": in `fit`

    train_frame, valid_frame, test_frame = load_splits(config)
    check_inferred_features(config, train_frame)
    preprocessor = fit_preprocessor(config, train_frame)
    train_set = to_tensors(preprocessor, train_frame)
    train_set.update(recorded_variants(preprocessor, train_frame, config.seed))
    valid_set = to_tensors(preprocessor, valid_frame) if valid_frame is not None else None
    test_set = to_tensors(preprocessor, test_frame) if test_frame is not None else None

    n_classes = len(preprocessor.classes)
    loss_name = config.train.loss or default_loss(config.task, n_classes)
    if predicts_values(config.task) and loss_name in ("bce", "cross_entropy", "focal"):
        raise DataError(f"train.loss: {loss_name} needs task classification")
    if predicts_labels(config.task) and loss_name in ("mse", "huber"):
        raise DataError(f"train.loss: {loss_name} needs task regression")
    if loss_name == "bce" and n_classes != 2 and not predicts_label_sets(config.task):
        raise DataError(f"train.loss: bce needs two classes, the target has {n_classes}")
    if loss_name == "focal" and config.train.label_smoothing:
        raise DataError("train.label_smoothing: not used by loss focal (it down-weights easy rows instead)")
    check_decision(config, preprocessor.classes, valid_set is not None)
    weight = class_weights(train_set["target"], n_classes) if config.train.class_weights else None
    loss_fn = LOSSES.get(loss_name)(weight=weight, label_smoothing=config.train.label_smoothing)
    output_dim = output_size(config.task, n_classes, loss_name)
    spec = preprocessor.input_spec()
    check_blendable(config.train.mixup, spec)
    seed_everything(config.seed)
    model = build_model(config.model.type, spec, output_dim, config.model.options())
    start_from(model, config.init_from, config.train.freeze)  # fine-tuning: other weights, fixed layers
    model_info = {
        "type": config.model.type,
        "options": config.model.options(),
        "output_dim": output_dim,
        "input_spec": asdict(spec),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    model_info.update(parameter_counts(model))

    topology = setup_distributed(pick_device(config.train.device))
    run_dir: Path | None = None
    try:
        run_dir, checkpoint = run_directory(config, out, resume, force, topology)
        if topology.is_writer:
            run_dir.mkdir(parents=True, exist_ok=True)
            # fingerprints of the training rows: `evaluate` warns when it is given them back
            save_training_rows(run_dir / ROW_HASHES_FILE, train_frame, preprocessor.feature_names)
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
            topology,
            checkpoint,
        )
    except BaseException:
        # a run that never finished keeps what it logged (and its checkpoints) but is marked incomplete
        if run_dir is not None and topology.is_writer:
            (run_dir / "model.json").unlink(missing_ok=True)
        raise
    finally:
        teardown(topology)


def run_directory(
    config: RunConfig, out: str | Path | None, resume: str | Path | None, force: bool, topology: Topology
) -> tuple[Path, Checkpoint | None]:
    """A new run directory, not yet created (rank 0 picks, every rank learns it), or the run to
    resume and its newest good checkpoint (None when it was stopped before the first one)."""
    default = default_run_dir(config.name or f"{config.task}-{config.model.type}")
    found = find_run_to_resume(resume, Path(out) if out else None, default) if resume is not None else None
    resumed = topology.broadcast_text(str(found or ""))
    if resumed:
        run_dir = Path(resumed)
        checkpoint = load_latest(run_dir / "checkpoints")
        saved_world = checkpoint.meta.get("world_size") if checkpoint else None
        check_same_run(run_dir, config, topology.world, saved_world, force)
        return run_dir, checkpoint
    run_dir = Path(topology.broadcast_text(str(Path(out) if out else default)))
    check_empty_output(run_dir)
    topology.barrier()  # every rank has checked before rank 0 creates it
    return run_dir, None


def provenance(config: RunConfig, topology: Topology) -> dict[str, Any]:
    """What environment.json adds to the versions and data hashes: the audit trail of a run."""
    return {
        "config_sha256": hashlib.sha256(config_to_yaml(config).encode()).hexdigest(),
        "command": sys.argv,
        "world_size": topology.world,
        "device": str(topology.device),
        "torch_threads": torch.get_num_threads(),
    }


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
    topology: Topology,
    checkpoint: Checkpoint | None,
) -> Run:
    from safetensors.torch import save

    from modelforge.training.tracking import open_trackers

    train_set, valid_set, test_set = splits
    metrics_path = run_dir / "metrics.jsonl"
    environment = start_environment(run_dir, config, topology, checkpoint)
    if topology.is_writer:
        start_run_files(run_dir, config, environment, checkpoint.history if checkpoint else [])
        atomic_write_json(run_dir / "preprocessing.json", preprocessor.to_json())
    rows = config.train.batch_size * ensemble_size(model)  # a step's batch: one per member of an ensemble
    first = {name: value[:rows].to(topology.device) for name, value in train_set.items()}
    target = first.pop("target")
    # training runs as `auto` chose; what comes after (decision, held-out metrics) scores as inference will
    settled = settle_auto(
        run_dir,
        config,
        model,
        topology,
        lambda: ensemble_loss(model, loss_fn).to(topology.device)(model(first), target),
        batch_signature(first),
        environment,
        show_progress,
    )

    def log_epoch(row: dict[str, Any]) -> None:
        if topology.is_writer:
            append_jsonl(metrics_path, row)
        if on_epoch is not None:
            on_epoch(row)

    scorer = make_scorer(config.task, loss_fn, preprocessor, settled.train.precision, 1024)
    sampling = settled.train.sampling
    epoch_rows = balanced_rows(train_set["target"], sampling) if sampling else len(train_set["target"])
    steps_per_epoch = -(-epoch_rows // (settled.train.batch_size * settled.train.grad_accum))
    with StopSignal() as stop:
        checkpointer = open_checkpointer(run_dir, topology, settled.train, stop, checkpoint)
        hooks: list[Any] = [checkpointer]
        if topology.is_writer:  # logs first, so a stop raised by the checkpointer comes after the step is logged
            purge_step = checkpoint.steps + 1 if checkpoint else None
            hooks[:0] = open_trackers(run_dir, settled.model_dump(mode="json"), steps_per_epoch, purge_step)
        try:
            outcome = fit(
                model,
                train_set,
                valid_set,
                settled.train,
                loss_fn,
                scorer,
                seed=config.seed,
                log_epoch=log_epoch,
                show_progress=show_progress,
                augment=batch_augmenter(preprocessor),
                resume=checkpoint,
                hooks=hooks,
                topology=topology,
            )
        except TrainingError as exc:
            checkpointer.flush()
            last = checkpointer.last_saved or "none yet"
            raise TrainingError(f"{exc}; last good checkpoint: {last}") from None
        finally:
            for hook in hooks:
                if hasattr(hook, "close"):
                    hook.close()

    weights = storable_tensors(full_model_state(model))  # a collective under FSDP
    if topology.is_writer:
        atomic_write_bytes(run_dir / "model.safetensors", save(weights))
    if not is_sharded(model):
        model.to("cpu")
    save_adapter(model, run_dir)  # LoRA runs: the trained tensors alone, beside the full weights

    decision = None
    if (config.decision is not None or config.calibrate is not None) and valid_set is not None:
        decision = fit_run_decision(config, model, valid_set, preprocessor)
        if topology.is_writer:
            atomic_write_json(run_dir / DECISION_FILE, decision.to_json())
    held_out = test_set if test_set is not None else valid_set
    evaluation: dict[str, Any] = {"split": "test" if test_set is not None else "valid"}
    if held_out is not None:
        inputs = {k: v for k, v in held_out.items() if k != "target"}
        values = outputs_to_predictions(
            forward_in_batches(model, inputs, precision=config.train.precision), config.task, preprocessor
        )
        if predicts_values(config.task):
            truth = preprocessor.target_encoder.inverse(held_out["target"].double().numpy())
            evaluation.update(regression_metrics(truth, values))
        elif predicts_label_sets(config.task):
            decision = decision or load_decision(run_dir, config.task, preprocessor.classes)
            evaluation.update(label_set_metrics(held_out["target"].numpy(), values, preprocessor.classes, decision))
        else:
            decision = decision or load_decision(run_dir, config.task, preprocessor.classes)
            evaluation.update(
                classification_metrics(held_out["target"].numpy(), values, preprocessor.classes, decision)
            )
    evaluation.update(
        best_epoch=outcome.best_epoch,
        epochs=len(outcome.history),
        steps=outcome.steps,
        stopped_early=outcome.stopped_early,
        train_seconds=round(time.time() - started, 3),
    )
    if topology.is_writer:
        finish_run_directory(run_dir, evaluation, environment, model_info)
    topology.barrier()
    return load_run(run_dir)


def start_environment(
    run_dir: Path, config: RunConfig, topology: Topology, checkpoint: Checkpoint | None
) -> dict[str, Any]:
    """environment.json for this run; a resumed run keeps its start and records each resumption."""
    path = run_dir / "environment.json"
    if path.exists() and (run_dir / "config.yaml").exists():
        environment = json.loads(path.read_text())
        environment.pop("finished_at", None)
        resumed = {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": checkpoint.steps if checkpoint else 0}
        environment.setdefault("resumed", []).append({**resumed, **provenance(config, topology)})
        return environment
    environment = environment_record(data_files(config.data))
    return {**environment, **provenance(config, topology)}
