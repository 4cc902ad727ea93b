"""`modelforge init`: a starter config inferred from the data, trainable without edits."""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path
from typing import Any

import yaml

from modelforge.errors import DataError, did_you_mean
from modelforge.models.registry import FEATURE_INPUTS, models_taking
from modelforge.tasks import load_entry, predicts_labels, task_for_file, task_named

# the starter model, in order of preference among those the registry says take the data's inputs:
# an encoder of its own for the richest input, the others fused beside it
STARTER_MODELS = ("cnn", "audio_cnn", "lstm", "mlp")
WHOLE_NUMBER_LABELS = 20  # a target of more whole numbers than this gets a note saying how init read them
RARE_SHARE = 0.2  # a two-class target whose rarer class is below this share gets a tuned decision
# model options a starter config writes beside the model's type, where the registry's defaults are the
# cheap end: audio_cnn with two convolutions a block, 32-64-128 wide, held out FSDD speakers 0.890
# against 0.840 with its defaults (bench/audio_robustness.py --config init, docs/site/benchmarks.md)
STARTER_MODEL_OPTIONS: dict[str, dict[str, Any]] = {"audio_cnn": {"channels": [32, 64, 128], "convs_per_block": 2}}


def starter_config(data: Path, target: str | None, task: str | None, out: Path | None) -> dict[str, Any]:
    return starter(data, target, task, out)[0]


def starter(data: Path, target: str | None, task: str | None, out: Path | None) -> tuple[dict[str, Any], list[str]]:
    """The starter config, and notes for its reader (why a column is left out)."""
    from modelforge.data.preprocess import infer_columns, infer_task
    from modelforge.data.privacy import warn_personal_columns
    from modelforge.data.readers import read_data
    from modelforge.data.split import named_split_column

    task = task or task_for_file(data, target)
    task_starter = task_named(task).starter if task is not None else None
    if task_starter is not None:  # a task with its own starter, e.g. language modeling: a corpus, no target
        options = {"target": target} if target is not None else {}  # a starter that takes --target reads it
        if options and "target" not in inspect.signature(load_entry(task_starter)).parameters:
            raise DataError(f"--target: task {task} takes no target column; leave it out")
        return load_entry(task_starter)(data, out, **options), []
    frame = read_data(data)
    warn_personal_columns(frame)  # e-mail / phone columns: the warning suggests data.drop or data.hash
    if data.is_dir():
        target = target or "label"
    elif data.suffix.lower() == ".npz" and "y" in frame.columns:
        target = target or "y"  # arrays x and y: the target has its one usual name
    if target is None:
        raise DataError(f"{data}: pass --target COLUMN (columns: {', '.join(map(str, frame.columns))})")
    if target not in frame.columns:
        raise DataError(
            f"--target: column {target!r} not in {data}{did_you_mean(target, frame.columns)}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    split_column, parts = named_split_column(frame, [target])
    features, left_out = infer_columns(frame, target, [split_column] if split_column else [])
    if not features:
        reasons = "; ".join(f"{column}: {reason}" for column, reason in left_out.items())
        raise DataError(
            f"{data}: no column besides the target {target!r} to learn from{f' ({reasons})' if reasons else ''}"
        )
    inputs = {FEATURE_INPUTS[f.type] for f in features}
    notes: list[str] = []
    if task is None:
        task = infer_task(frame[target], media=bool(inputs & {"image", "audio"}))
        notes = task_notes(frame[target], task)
    model_type = starter_model(inputs)
    base = out.resolve().parent if out else Path.cwd()
    train_path = os.path.relpath(data.resolve(), base)
    notes += [f"data.drop: {column}: {reason}" for column, reason in left_out.items()]
    return {
        "task": task,
        "seed": 0,
        "data": {
            "train": train_path,
            "target": target,
            "split": starter_split(split_column, parts, predicts_labels(task)),
            **({"drop": list(left_out)} if left_out else {}),
        },
        "features": [f.model_dump(exclude_defaults=True, exclude={"type"}) | {"type": f.type} for f in features],
        "model": {"type": model_type, **STARTER_MODEL_OPTIONS.get(model_type, {})},
        "train": train_budget(len(frame), inputs),
        **imbalance_sections(frame[target], task),
    }, notes


def task_notes(target: Any, task: str) -> list[str]:
    """A line saying how an inferred task read a target of many whole numbers, which could be either."""
    from modelforge.data.preprocess import whole_numbers

    values = target.dropna()
    if not whole_numbers(values) or values.nunique() <= WHOLE_NUMBER_LABELS:
        return []
    read, other = ("class ids", "regression") if predicts_labels(task) else ("a quantity", "classification")
    return [f"task: {task}: the target's {values.nunique()} whole-number values read as {read}; --task {other} if not"]


def starter_split(column: str | None, parts: set[str], stratify: bool) -> dict[str, Any]:
    """`data.split`: 10 % of the rows for validation and 20 % for test, or the data's own split
    (`named_split_column`) with those shares drawn from its training rows only for the parts it lacks."""
    if column is None:
        return {"valid": 0.1, "test": 0.2, "stratify": stratify}
    missing = {part: share for part, share in (("valid", 0.1), ("test", 0.2)) if part not in parts}
    named = {"valid": 0.0, "test": 0.0} | missing  # a part the column names takes no share of the rest
    return {"column": column, **named, "stratify": stratify}


def imbalance_sections(target: Any, task: str) -> dict[str, Any]:
    """`decision:` and `calibrate:` for a two-class target whose rarer class is under `RARE_SHARE` of the rows.

    A fixed 0.5 cut on such data predicts the common class almost always, so the starter config tunes
    the threshold for the best F1 of the rarer class on the validation split, and calibrates
    (docs/site/how-to/imbalance.md); other targets get neither.
    """
    if not predicts_labels(task):  # one label per row; multi-label targets tune per label on their own
        return {}
    counts = target.dropna().astype(str).value_counts()
    if len(counts) != 2 or counts.iloc[-1] / counts.sum() >= RARE_SHARE:
        return {}
    return {"decision": {"optimize": "f1", "positive": str(counts.index[-1])}, "calibrate": "temperature"}


def train_budget(rows: int, inputs: set[str]) -> dict[str, Any]:
    """Epochs, batch size, schedule and early stopping for `rows` rows of these input kinds.

    Bigger sets need fewer passes (each holds more signal), so epochs go as 1/sqrt(rows) within bounds,
    and batches grow with the rows so a small set still takes several steps a pass. Images and audio
    cost far more per row than tables and text, so they get fewer passes (50 at 1,000 rows, 18 at
    8,000; 100 and 35 for tables). One-cycle (warm up to lr, anneal to ~0 by the last epoch) lets a
    short budget take a high lr and end at its best; early stopping only cuts a plateau: patience a
    third of the epochs (3 to 10), so the high-lr middle does not end a short run.
    Measured by bench/time_to_accuracy.py (the old fixed 30/50 cosine epochs side by side).
    """
    media = bool(inputs & {"image", "audio"})
    passes, fewest, most, batch_divisor = (50, 4, 60, 128) if media else (100, 25, 80, 512)
    epochs = min(max(round(passes * math.sqrt(1000 / max(rows, 1))), fewest), most)
    batch = min(max(2 ** round(math.log2(max(rows, 1) / batch_divisor)), 16), 256)
    return {
        "epochs": epochs,
        "batch_size": batch,
        "lr": round(min(3.0e-3, 3.0e-3 * math.sqrt(batch / 64)), 4),
        "optimizer": "adamw",
        "weight_decay": 1.0e-4,
        "schedule": "onecycle",
        "early_stopping": {"metric": "valid_loss", "patience": min(max(3, epochs // 3), 10)},
    }


def starter_model(inputs: set[str]) -> str:
    """The preferred registered model that takes these inputs (`STARTER_MODELS`, then any other)."""
    fitting = models_taking(inputs)
    if not fitting:
        raise DataError(f"no registered model takes {', '.join(sorted(inputs))} inputs together; see modelforge models")
    return next((name for name in STARTER_MODELS if name in fitting), fitting[0])


def starter_config_yaml(data: Path, target: str | None, task: str | None, out: Path | None) -> str:
    config, notes = starter(data, target, task, out)
    header = f"# modelforge config inferred from {data}; edit freely, then: modelforge train <this file>\n"
    header += "".join(f"# {note}\n" for note in notes)
    if "decision" not in config:
        return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    decision = {key: config.pop(key) for key in ("decision", "calibrate")}
    positive = decision["decision"]["positive"]
    note = (
        f"# {positive!r} is the rarer class (under {RARE_SHARE:.0%} of the rows): the cut on P({positive}) is tuned\n"
        "# on the validation split for the best F1 instead of 0.5. Other rules: {max_flag_rate: 0.1},\n"
        "# {recall_at_precision: 0.9}, {precision_at_recall: 0.8}, {cost: {false_positive: 1, false_negative: 20}}\n"
    )
    return (
        header
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        + note
        + yaml.safe_dump(decision, sort_keys=False, allow_unicode=True)
    )
