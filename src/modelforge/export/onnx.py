"""ONNX export with a parity check, and an onnxruntime predictor for predict/serve `--engine onnx`.

    modelforge export runs/digits --format onnx          # writes runs/digits/model.onnx
    modelforge predict runs/digits --data rows.csv --engine onnx

The graph takes one input per input group (`numeric`, `category`, `text`, `image`; dynamic
batch size) and returns the raw model outputs (logits, or the scaled regression value); the
predictor applies the run's own output transform, so its probabilities match `Run.outputs`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelforge.errors import ModelforgeError
from modelforge.export.parity import ExportError, Parity, PositionalInputs, compare

ONNX_FILE = "model.onnx"
OPSET = 17


def check_exportable(model_info: dict[str, Any], fmt: str) -> None:
    """ExportError, one line, when the run's weights cannot be exported as they are (int8-dynamic
    runs export to ONNX only: `export_dynamic_int8`)."""
    quantization = model_info.get("quantization")
    if quantization and not (quantization == "int8-dynamic" and fmt == "onnx"):
        raise ExportError(
            f"export --format {fmt}: the run is {quantization} quantized; export the float run "
            "(onnxruntime applies its own int8: `modelforge benchmark RUN --engine onnx-int8`)"
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
    check_exportable(run.model_info, "onnx")
    if run.model_info.get("quantization") == "int8-dynamic":
        return export_dynamic_int8(run, sample, dest)
    return export_model_onnx(run.model, sample, dest)


def export_dynamic_int8(run: Any, sample: dict[str, Any], dest: Path) -> Parity:
    """An int8-dynamic run (`compress --quantize int8-dynamic`): its int8 weights, dequantized into
    the float architecture, are exported and checked like a float run's; then onnxruntime's dynamic
    int8 quantization (per-channel weights, activations quantized per call, as torch's) writes
    `dest`. The parity returned is the float graph's; how often the int8 graph's labels (or how far
    its values) agree with the run's own torch int8 forward is added to its description."""
    import torch

    from modelforge.compress.quantize import dequantized_state
    from modelforge.models import build_model

    info = run.model_info
    float_model = build_model(info["type"], run.preprocessor.input_spec(), info["output_dim"], info["options"])
    float_model.load_state_dict(dequantized_state(run.model))
    float_graph = dest.with_name(f"{dest.name}.float")
    try:
        parity = export_model_onnx(float_model.eval(), sample, float_graph)
        quantize_onnx_int8(float_graph, dest)
    finally:
        float_graph.unlink(missing_ok=True)
    from modelforge.inference import outputs_to_predictions
    from modelforge.tasks import predicts_values

    session = onnx_session(dest)
    names = sorted(sample)
    raw = torch.from_numpy(session.run(None, {n: sample[n].numpy() for n in names})[0])
    with torch.no_grad():
        int8 = outputs_to_predictions(raw, run.task, run.preprocessor)
        eager = outputs_to_predictions(run.model(sample).float(), run.task, run.preprocessor)
    if predicts_values(run.task):
        agreement = f"max abs diff {np.abs(int8 - eager).max():.3g} from the run's torch int8"
    else:
        agreement = f"labels agree with the run's torch int8 on {(int8.argmax(1) == eager.argmax(1)).mean():.1%}"
    note = f"{parity.batches}, float graph of the dequantized weights; onnxruntime int8: {agreement}"
    return Parity(parity.rows, parity.max_abs_diff, parity.tolerance, note)


def quantize_onnx_int8(float_graph: Path, dest: Path, per_channel: bool = True) -> Path:
    """onnxruntime's dynamic int8 quantization of an exported graph, written to `dest`."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice about shape pre-processing on every call
    try:
        quantize_dynamic(str(float_graph), str(dest), weight_type=QuantType.QInt8, per_channel=per_channel)
    finally:
        root.setLevel(level)
    return dest


def export_model_onnx(model: Any, sample: dict[str, Any], dest: Path) -> Parity:
    """Write `dest` from an eval-mode model over input groups and check it on `sample` at several
    batch sizes and lengths (`parity_batches`). The batch axis is dynamic; text comes padded to the
    run's max_length, and the graph trims the padding itself (masks for attention, the longest
    row for the recurrent families), as the eager forward does."""
    import torch

    names = sorted(sample)
    wrapper = PositionalInputs(model, names).eval()
    example = tuple(sample[n][:2] for n in names)
    with exporting(), torch.no_grad():
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

    def run_graph(batch: dict[str, Any]) -> np.ndarray:
        return session.run(None, {n: batch[n].numpy() for n in names})[0]  # type: ignore[no-any-return]

    return check_batches(lambda batch: model(batch).float().numpy(), run_graph, sample)


def export_supervised_run(run_dir: Path, dest: Path) -> Parity:
    """A classification or regression run's model.onnx, checked on its held-out rows."""
    from modelforge.compress.variant import load_source_run
    from modelforge.export.recipe import parity_sample

    run = load_source_run(run_dir, "export")
    return export_onnx(run, parity_sample(run), dest)


@contextlib.contextmanager
def exporting() -> Iterator[None]:
    """Tracing as the exporters need it: PyTorch's fused transformer-encoder kernel (its inference
    fast path) has no ONNX or TorchScript form, so the layers run their plain ops; warnings about
    the TorchScript-based exporter's deprecation and traced shapes are silenced."""
    import torch

    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def parity_batches(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """The whole sample as one batch, then batches of 1 and 7 of its shortest and of its longest
    rows (by token count when it has text), so a shape frozen by the trace shows up."""
    import torch

    rows = len(next(iter(sample.values())))
    lengths = (sample["text"] != 0).sum(1) if "text" in sample else torch.zeros(rows)
    order = torch.argsort(lengths, stable=True)
    picks = [order[:1], order[-1:], order[:7], order[-7:]]
    return [sample, *({k: v[pick] for k, v in sample.items()} for pick in picks)]


def check_batches(eager: Any, exported: Any, sample: dict[str, Any]) -> Parity:
    """The worst parity of `exported(batch)` against `eager(batch)` over `parity_batches(sample)`."""
    import torch

    checks = []
    for batch in parity_batches(sample):
        with torch.no_grad():
            checks.append(compare(eager(batch), exported(batch)))
    worst = max(checks, key=lambda parity: parity.max_abs_diff)
    sizes = "+".join(str(parity.rows) for parity in checks)
    return Parity(sum(p.rows for p in checks), worst.max_abs_diff, worst.tolerance, f"batches of {sizes}")


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

    def predict(self, data: pd.DataFrame | str | Path, threshold: float | None = None) -> pd.DataFrame:
        """Predicted label and per-class probabilities (or the value), like `Run.predict` (the saved
        decision's calibration and threshold applied; `threshold` overrides the saved one)."""
        return self.run.answer(self.outputs(self.run._prepare(data)), threshold)


def load_onnx_predictor(run_dir: str | Path, threads: int | None = None) -> OnnxPredictor:
    """The run's exported model.onnx in onnxruntime; `outputs(frame)` matches `Run.outputs`."""
    from modelforge.run import load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    path = run_dir / ONNX_FILE
    if not path.exists():
        raise ExportError(f"{path}: not found; run `modelforge export {run_dir} --format onnx` first")
    return OnnxPredictor(run, onnx_session(path, threads))
