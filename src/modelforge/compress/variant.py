"""A compressed variant is a normal run directory: what it copies, how it is staged, how it is scored.

Every variant is written into a hidden temporary folder beside `--out` and renamed into place
only when complete, so a failure (bad input, interrupted fine-tune) leaves no partial output.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelforge.errors import ModelforgeError, RunError
from modelforge.run import REQUIRED_FILES, Run, finish_run_directory, load_run
from modelforge.tasks import predicts_values

COPIED_FILES = ("config.yaml", "preprocessing.json", "environment.json")


def load_source_run(path: str | Path, verb: str) -> Run:
    """The run to compress, distill, benchmark or export; refused in one line when its task does not
    support `verb`, when the folder is missing or when it has no weights."""
    from modelforge.tasks import task_of_run

    path = Path(path)
    task_of_run(path, verb)
    if not (path / "model.safetensors").exists():
        raise RunError(f"{path}: run has no weights (model.safetensors missing); train it first")
    return load_run(path)


def copy_run_metadata(source: Path, dest: Path) -> None:
    for name in COPIED_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, dest / name)


def save_weights(tensors: dict[str, torch.Tensor], dest: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(dest / "model.safetensors"))


def finish_variant(dest: Path, model_info: dict[str, Any], evaluation: dict[str, Any]) -> None:
    """Finished as every run is (eval.json, environment.json, model.json last, files.json for audit)."""
    environment_path = dest / "environment.json"
    environment = json.loads(environment_path.read_text()) if environment_path.exists() else {}
    finish_run_directory(dest, evaluation, environment, model_info)
    missing = [name for name in REQUIRED_FILES if not (dest / name).exists()]
    assert not missing, f"variant is missing {missing}"


# ----------------------------------------------------------------------------- data and scoring
@dataclass
class Splits:
    """The run's own train/valid/test tensors, rebuilt with its fitted preprocessing."""

    train: dict[str, torch.Tensor]
    valid: dict[str, torch.Tensor] | None
    test: dict[str, torch.Tensor] | None

    @property
    def held_out(self) -> dict[str, torch.Tensor]:
        held = self.test if self.test is not None else self.valid
        if held is None:
            raise ModelforgeError("the run has no test or validation split to measure accuracy on")
        return held


def run_splits(run: Run) -> Splits:
    """Same seed and files as training, so the test rows are the ones the run was scored on."""
    from modelforge.training.recipe import load_splits, to_tensors

    train, valid, test = load_splits(run.config)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*")  # read-only label arrays; never written
        tensors = [None if frame is None else to_tensors(run.preprocessor, frame) for frame in (train, valid, test)]
    return Splits(*tensors)  # type: ignore[arg-type]


def inputs_only(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in tensors.items() if k != "target"}


def score_model(model: nn.Module, run: Run, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The task's test metrics of any model (float, pruned, quantized) on labelled tensors."""
    from modelforge.inference import forward_in_batches

    raw = forward_in_batches(model, inputs_only(tensors), precision=run.config.train.precision)
    return score_outputs(raw, run, tensors["target"])


def score_outputs(raw: torch.Tensor, run: Run, target: torch.Tensor) -> dict[str, Any]:
    from modelforge.evaluate.metrics import classification_metrics, regression_metrics
    from modelforge.inference import outputs_to_predictions

    values = outputs_to_predictions(raw, run.task, run.preprocessor)
    if predicts_values(run.task):
        return regression_metrics(run.preprocessor.target_encoder.inverse(target.double().numpy()), values)
    return classification_metrics(target.numpy(), values, run.preprocessor.classes)


def headline(metrics: dict[str, Any], task: str) -> tuple[str, float]:
    key = "rmse" if predicts_values(task) else "accuracy"
    return key, float(metrics[key])


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
