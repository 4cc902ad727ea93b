"""ONNX export with a parity check, and an onnxruntime predictor for predict/serve `--engine onnx`.

    modelforge export runs/digits --format onnx          # writes runs/digits/model.onnx
    modelforge predict runs/digits --data rows.csv --engine onnx

The graph takes one input per input group (`numeric`, `category`, `text`, `image`; dynamic
batch size) and returns the raw model outputs (logits, or the scaled regression value); the
predictor applies the run's own output transform, so its probabilities match `Run.outputs`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelforge.errors import ModelforgeError
from modelforge.export.parity import ExportError, Parity, PositionalInputs, compare
from modelforge.tasks import predicts_values

ONNX_FILE = "model.onnx"
OPSET = 17
# Text families trim padding to each batch's longest row (`int(lengths.max())`), a data-dependent
# shape that a traced graph would freeze at the example batch's length.
TRACEABLE_TYPES = ("mlp", "cnn", "resnet", "vit")


def check_exportable(model_info: dict[str, Any], fmt: str) -> None:
    model_type = model_info["type"]
    if model_info.get("quantization"):
        raise ExportError(
            f"export --format {fmt}: the run is {model_info['quantization']} quantized; export the float run "
            "(onnxruntime applies its own quantization)"
        )
    if model_type not in TRACEABLE_TYPES:
        raise ExportError(
            f"export --format {fmt}: model type {model_type} is not supported (its forward trims padding per "
            f"batch, which a traced graph would freeze); supported: {', '.join(TRACEABLE_TYPES)}"
        )


def onnx_session(path: Path, threads: int | None = None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelforgeError("onnxruntime is not installed; pip install 'modelforge[onnx]'") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_onnx(run: Any, sample: dict[str, Any], dest: Path) -> Parity:
    """Write `dest` (an .onnx file) from a loaded run; `sample` are real input rows for tracing and parity."""
    import torch

    check_exportable(run.model_info, "onnx")
    names = sorted(sample)
    wrapper = PositionalInputs(run.model, names).eval()
    example = tuple(sample[n][:2] for n in names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        torch.onnx.export(
            wrapper,
            example,
            str(dest),
            input_names=names,
            output_names=["output"],
            dynamic_axes={name: {0: "batch"} for name in [*names, "output"]},
            opset_version=OPSET,
            dynamo=False,
        )
    session = onnx_session(dest)
    with torch.no_grad():
        expected = wrapper(*(sample[n] for n in names)).float().numpy()
    actual = session.run(None, {n: sample[n].numpy() for n in names})[0]
    return compare(expected, actual)


# ----------------------------------------------------------------------------- predictor
@dataclass
class OnnxPredictor:
    """A run's preprocessing and output transform around an onnxruntime session (no torch forward)."""

    run: Any
    session: Any
    engine: str = "onnx (onnxruntime)"

    @property
    def task(self) -> str:
        return self.run.task

    def raw_outputs(self, inputs: dict[str, np.ndarray], batch_size: int = 1024) -> np.ndarray:
        names = [i.name for i in self.session.get_inputs()]
        n_rows = len(next(iter(inputs.values())))
        parts = [
            self.session.run(None, {n: np.ascontiguousarray(inputs[n][b : b + batch_size]) for n in names})[0]
            for b in range(0, n_rows, batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities (N×K) or predicted values (N), like `Run.outputs`."""
        import torch

        from modelforge.inference import outputs_to_predictions

        raw = self.raw_outputs(self.run.preprocessor.transform_inputs(frame))
        return outputs_to_predictions(torch.from_numpy(raw), self.task, self.run.preprocessor)

    def predict(self, data: pd.DataFrame | str | Path) -> pd.DataFrame:
        """Predicted label and per-class probabilities (or the value), like `Run.predict`."""
        values = self.outputs(self.run._prepare(data))
        if predicts_values(self.task):
            return pd.DataFrame({"prediction": values})
        classes = self.run.preprocessor.classes
        result = pd.DataFrame({"prediction": [classes[i] for i in values.argmax(axis=1)]})
        for k, label in enumerate(classes):
            result[f"probability_{label}"] = values[:, k]
        return result


def load_onnx_predictor(run_dir: str | Path, threads: int | None = None) -> OnnxPredictor:
    """The run's exported model.onnx in onnxruntime; `outputs(frame)` matches `Run.outputs`."""
    from modelforge.run import load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    path = run_dir / ONNX_FILE
    if not path.exists():
        raise ExportError(f"{path}: not found; run `modelforge export {run_dir} --format onnx` first")
    return OnnxPredictor(run, onnx_session(path, threads))
