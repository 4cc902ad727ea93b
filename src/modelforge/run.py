"""The run directory: what a training run saves, and how predict/evaluate/serve load it back.

    RUN_DIR/
      config.yaml          resolved config (every default filled in)
      preprocessing.json   fitted feature and target encoders
      model.safetensors    final weights
      model.json           model type, options, input spec, output size
      metrics.jsonl        one JSON object per epoch
      eval.json            metrics on the held-out test split
      environment.json     versions, git commit, host, data file hashes, start/end times
      train_rows.safetensors  64-bit hashes of the training rows (tables), for evaluate's overlap warning
      decision.json        classification with `decision:` / `calibrate:`: calibration and threshold
                           tuned on the validation split; multilabel: one threshold per label
                           (modelforge.decision)

Every file is written to a temporary name in the same folder, fsynced, then renamed, so a
crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelforge.errors import RunError
from modelforge.files import (
    atomic_write_json,
    atomic_write_text,
    directory_mode,
    file_sha256,
    read_jsonl,
    read_yaml_file,
    write_manifest,
)
from modelforge.tasks import predicts_label_sets, predicts_values

REQUIRED_FILES = ("config.yaml", "preprocessing.json", "model.safetensors", "model.json")


# ----------------------------------------------------------------------------- provenance
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_record(data_files: list[str]) -> dict[str, Any]:
    import importlib.metadata as metadata

    versions = {}
    for package in ("modelforge", "torch", "numpy", "pandas", "pydantic", "safetensors"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": platform.node(),
        "versions": versions,
        "git_commit": git_commit(),
        "data": {path: file_sha256(path) for path in data_files if path and Path(path).exists()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    candidate, counter = base, 1
    while candidate.exists():
        counter += 1
        candidate = Path(f"{base}-{counter}")
    return candidate


def check_empty_output(out: Path) -> None:
    """A run is written only into a new or empty folder."""
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: exists and is not a directory; choose another or remove it")
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out}: output directory exists and is not empty; choose another or remove it")


def claim_run_directory(out: str | Path | None, default_name: str) -> Path:
    """Where a new run is written: `out`, or runs/NAME-TIME; not created yet, and checked to be new or empty."""
    run_dir = Path(out) if out else default_run_dir(default_name)
    check_empty_output(run_dir)
    return run_dir


@contextlib.contextmanager
def staged_run_directory(out: Path) -> Iterator[Path]:
    """A temporary folder beside `out` that becomes `out` on success and vanishes on failure, for writers
    that make a run in one go (compress, distill, merge-adapter, export's HF folder)."""
    check_empty_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        temp.chmod(directory_mode())  # mkdtemp's 0700, widened to what mkdir would give under the umask
        yield temp
        if out.exists():
            out.rmdir()  # empty, checked above
        temp.replace(out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def start_run_files(run_dir: Path, config: Any, environment: dict[str, Any], history: list[dict[str, Any]]) -> Path:
    """The first writes of a run and of each resumption: config.yaml, environment.json, and metrics.jsonl
    holding the rows logged up to the checkpoint it resumes from (later rows are logged again as they
    are replayed). Returns metrics.jsonl's path."""
    from modelforge.config import config_to_yaml

    atomic_write_text(run_dir / "config.yaml", config_to_yaml(config))
    atomic_write_json(run_dir / "environment.json", environment)
    metrics = run_dir / "metrics.jsonl"
    atomic_write_text(metrics, "".join(json.dumps(row) + "\n" for row in history))
    return metrics


def finish_run_directory(
    run_dir: Path, evaluation: dict[str, Any], environment: dict[str, Any], model_info: dict[str, Any]
) -> None:
    """The last writes of every run: test metrics, environment with its end time, then model.json (its
    presence marks a finished run), then the sha256 manifest `modelforge audit` verifies."""
    environment["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(run_dir / "eval.json", evaluation)
    atomic_write_json(run_dir / "environment.json", environment)
    atomic_write_json(run_dir / "model.json", model_info)
    write_manifest(run_dir)


# ----------------------------------------------------------------------------- loading
@dataclass
class RunDirectory:
    """What every kind of finished run has: its folder, test metrics and per-epoch history."""

    path: Path

    @property
    def metrics(self) -> dict[str, Any]:
        path = self.path / "eval.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / "metrics.jsonl")


def read_finished_run(path: Path, required: tuple[str, ...] = REQUIRED_FILES) -> tuple[Any, dict[str, Any]]:
    """A finished run's config and model.json; RunError naming the files a run lacks."""
    from modelforge.config import RunConfig

    missing = [name for name in required if not (path / name).exists()]
    if missing:
        raise RunError(f"{path}: not a finished run (missing {', '.join(missing)})")
    config = RunConfig.model_validate(read_yaml_file(path / "config.yaml", RunError))
    return config, json.loads((path / "model.json").read_text())


@dataclass
class Run(RunDirectory):
    """A classification, multilabel or regression run loaded from its directory (`modelforge.train` or `load_run`).

    Attributes: `path` (the run directory), `config` (the resolved RunConfig), `metrics` (the held-out
    split's, from eval.json), `history` (one row per epoch), `preprocessor`, `model_info`, `model`.
    Methods take a pandas DataFrame or a data file with the training data's columns:
    `predict` (labels and class probabilities, or values), `evaluate` (metrics; needs the target
    column) and `outputs` (the model's own probabilities or values as a numpy array). A classification
    run's `decision` (decision.json: calibration and threshold) turns those probabilities into what
    `predict` and `evaluate` report.
    """

    path: Path
    config: Any
    preprocessor: Any
    model_info: dict[str, Any]
    model: Any = field(repr=False)
    # modelforge.decision.Decision (classification) or LabelSetDecision (multilabel); None for regression
    decision: Any = field(default=None, repr=False)

    @property
    def task(self) -> str:
        return str(self.config.task)

    def _prepare(self, data: pd.DataFrame | str | Path) -> pd.DataFrame:
        from modelforge.data.preprocess import apply_column_policies
        from modelforge.data.readers import read_data

        frame = data if isinstance(data, pd.DataFrame) else read_data(data, self.config.data.bad_rows)
        return apply_column_policies(frame, self.config.data.drop, self.config.data.hash)

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities (N×K) or predicted values (N) for the rows of a frame."""
        import torch

        from modelforge.inference import forward_in_batches, outputs_to_predictions

        inputs = {k: torch.from_numpy(v) for k, v in self.preprocessor.transform_inputs(frame).items()}
        raw = forward_in_batches(self.model, inputs, precision=self.config.train.precision)
        return outputs_to_predictions(raw, self.task, self.preprocessor)

    def predict(self, data: pd.DataFrame | str | Path, threshold: float | None = None) -> pd.DataFrame:
        """Predicted label and a probability column per class (or the value, for regression).

        Probabilities are calibrated and labels follow the saved decision rule; `threshold` (two classes
        only) replaces the saved threshold on P(positive)."""
        return self.answer(self.outputs(self._prepare(data)), threshold)

    def answer(self, values: np.ndarray, threshold: float | None = None) -> pd.DataFrame:
        """`predict`'s frame from the model's outputs (`outputs`, or an ONNX graph's)."""
        if predicts_values(self.task):
            return pd.DataFrame({"prediction": values})
        classes = self.preprocessor.classes
        if predicts_label_sets(self.task):  # the labels passing their thresholds, joined by "|"
            chosen = self.decision.choose(values, threshold)
            names = [str(c) for c in classes]
            labels = ["|".join(n for n, on in zip(names, row, strict=True) if on) for row in chosen]
            result = pd.DataFrame({"prediction": labels})
            for k, label in enumerate(names):
                result[f"probability_{label}"] = values[:, k]
            return result
        if threshold is not None and len(classes) != 2:
            raise RunError(f"--threshold: needs a two-class run, {self.path} has {len(classes)} classes")
        probabilities = self.decision.calibrated(values)
        chosen = self.decision.choose(probabilities, threshold)
        result = pd.DataFrame({"prediction": [classes[i] for i in chosen]})
        for k, label in enumerate(classes):
            result[f"probability_{label}"] = probabilities[:, k]
        return result

    def evaluate(self, data: pd.DataFrame | str | Path) -> dict[str, Any]:
        """Metrics on labelled rows (a frame or a data file): accuracy, F1, … or RMSE, R², …

        Warns (`TrainingRowsWarning`) when some of the rows are rows the run was trained on."""
        from modelforge.data.row_hashes import warn_if_training_rows
        from modelforge.evaluate.metrics import classification_metrics, label_set_metrics, regression_metrics

        frame = self._prepare(data)
        warn_if_training_rows(self.path, frame)
        values = self.outputs(frame)
        target = self.preprocessor.transform_target(frame)
        if predicts_values(self.task):
            return regression_metrics(self.preprocessor.target_encoder.inverse(target), values)
        if predicts_label_sets(self.task):
            return label_set_metrics(target, values, self.preprocessor.classes, self.decision)
        return classification_metrics(target, values, self.preprocessor.classes, self.decision)


def load_run(path: str | Path) -> Any:
    """Any finished run, loaded by its task's loader (see modelforge.tasks)."""
    from modelforge.tasks import task_of_run

    path = Path(path)
    return task_of_run(path).load_run(path)


def load_supervised_run(path: str | Path) -> Run:
    """Rebuild config, preprocessing and model from a classification or regression run directory."""
    from safetensors.torch import load_file

    from modelforge.data.preprocess import InputSpec, Preprocessor
    from modelforge.models import build_model

    path = Path(path)
    config, info = read_finished_run(path)
    preprocessor = Preprocessor.from_json(json.loads((path / "preprocessing.json").read_text()))
    spec = InputSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in info["input_spec"].items()})
    model = build_model(info["type"], spec, info["output_dim"], info["options"])
    try:
        if info.get("quantization"):  # int8 weights + scales, rebuilt by the compress package
            from modelforge.compress.quantize import load_quantized

            model = load_quantized(model, path / "model.safetensors", info, spec)
        else:
            model.load_state_dict(load_file(str(path / "model.safetensors")))
    except (RuntimeError, OSError) as exc:
        raise RunError(f"{path / 'model.safetensors'}: weights do not load ({str(exc).splitlines()[0]})") from None
    model.eval()
    return Run(path, config, preprocessor, info, model, load_decision(path, config.task, preprocessor.classes))


def load_decision(path: Path, task: str, classes: list[Any]) -> Any:
    """The run's decision.json; for a classification run without one, the plain rule (most probable class,
    and for two classes the second is the positive one a `--threshold` applies to)."""
    from modelforge.decision import DECISION_FILE, Decision, LabelSetDecision

    if predicts_values(task):
        return None
    saved = path / DECISION_FILE
    if predicts_label_sets(task):
        if saved.is_file():
            return LabelSetDecision.from_json(json.loads(saved.read_text()), classes)
        return LabelSetDecision(list(classes), [0.5] * len(classes))
    if saved.is_file():
        return Decision.from_json(json.loads(saved.read_text()), classes)
    return Decision(classes=list(classes), positive=1 if len(classes) == 2 else None)
