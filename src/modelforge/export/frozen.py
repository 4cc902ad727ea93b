"""A run's model traced and frozen for serving, checked against the eager model before it is used.

Freezing folds batch norm into the convolutions before it, drops dropout and turns the
parameters into constants; image inputs go in channels-last layout, where oneDNN's
convolutions replace the slow batch-1 path. For the quickstart digits CNN a one-row forward
pass drops from ~0.8 ms to ~0.15 ms, and a 64-row one from ~5.1 ms to ~3.5 ms (one thread).

Only the families in `TRACEABLE_TYPES` are frozen, with float weights (not int8) and fp32
passes (autocast is left to eager). The frozen graph must reproduce the eager outputs on random
inputs at two batch sizes, within the export tolerance, or it is not used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from modelforge.export.parity import TOLERANCE, ExportError, Parity, compare

# frozen for serving: the families whose frozen graph was measured faster than eager (text families
# export to ONNX and TorchScript too, but an LSTM gains nothing from freezing)
TRACEABLE_TYPES = ("mlp", "cnn", "resnet", "vit")
IMAGE_GROUPS = ("image", "audio")  # 4-D input groups that go in channels-last layout
PARITY_BATCHES = (1, 7)


class _ChannelsLast(nn.Module):
    """Positional inputs in sorted group order; 4-D groups converted to channels-last in the graph."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        inputs = {
            name: tensor.contiguous(memory_format=torch.channels_last) if name in IMAGE_GROUPS else tensor
            for name, tensor in zip(self.names, tensors, strict=True)
        }
        return self.model(inputs)


@dataclass(frozen=True)
class FrozenModel:
    """Call it like the run's model: a dict of input groups in, raw outputs out."""

    graph: Any  # torch.jit.ScriptModule
    names: list[str]
    parity: Parity

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # A frozen graph is already optimized; the profiling executor would re-specialize it for
        # every new batch size, a multi-millisecond stall on the first request of each size.
        with torch.jit.optimized_execution(False):
            return self.graph(*(inputs[name] for name in self.names))  # type: ignore[no-any-return]


def random_inputs(spec: Any, rows: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Inputs of the shapes and dtypes the model takes (an `InputSpec`), with random values."""
    inputs: dict[str, torch.Tensor] = {}
    if spec.numeric_dim:
        inputs["numeric"] = torch.randn(rows, spec.numeric_dim, generator=generator)
    if spec.category_cardinalities:
        columns = [torch.randint(0, max(c, 1), (rows,), generator=generator) for c in spec.category_cardinalities]
        inputs["category"] = torch.stack(columns, dim=1)
    if spec.text_vocab_size:
        inputs["text"] = torch.randint(1, max(spec.text_vocab_size, 2), (rows, spec.text_length), generator=generator)
    if spec.image_shape:
        inputs["image"] = torch.rand(rows, *spec.image_shape, generator=generator)
    if spec.audio_shape:
        inputs["audio"] = torch.randn(rows, *spec.audio_shape, generator=generator)
    return inputs


def freeze_for_inference(model: nn.Module, model_info: dict[str, Any], spec: Any, precision: str) -> FrozenModel:
    """The frozen graph of an eval-mode model, or ExportError saying why it is not frozen."""
    if model_info.get("quantization"):
        raise ExportError(f"its weights are {model_info['quantization']} quantized")
    if model_info["type"] not in TRACEABLE_TYPES:
        raise ExportError(f"model type {model_info['type']} is not frozen for serving")
    if precision != "fp32":
        raise ExportError(f"the run computes in {precision}; frozen graphs are fp32 only")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    samples = [{k: v.to(device) for k, v in random_inputs(spec, rows, generator).items()} for rows in PARITY_BATCHES]
    names = sorted(samples[0])
    model.eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit announces its deprecation; tracing warns about shapes
        channels_last = _ChannelsLast(_channels_last_copy(model, names), names).eval()
        graph = torch.jit.freeze(torch.jit.trace(channels_last, tuple(samples[-1][n] for n in names)))
        frozen = FrozenModel(graph, names, Parity(0, 0.0, TOLERANCE))
        checks = []
        for sample in samples:
            try:
                actual = frozen(sample)
            except RuntimeError as exc:  # a size the trace turned into a constant
                rows = len(sample[names[0]])
                raise ExportError(f"the frozen graph fails on {rows} rows ({str(exc).splitlines()[0]})") from None
            checks.append(compare(model(sample).float().cpu().numpy(), actual.float().cpu().numpy()))
    worst = max(checks, key=lambda parity: parity.max_abs_diff)
    if not worst.ok:
        raise ExportError(f"the frozen graph differs from the eager model ({worst.describe()})")
    return replace(frozen, parity=Parity(sum(PARITY_BATCHES), worst.max_abs_diff, worst.tolerance))


def _channels_last_copy(model: nn.Module, names: list[str]) -> nn.Module:
    """The model with its weights in channels-last layout when it takes 4-D inputs (else the model itself)."""
    import copy

    if not any(name in IMAGE_GROUPS for name in names):
        return model
    return copy.deepcopy(model).to(memory_format=torch.channels_last)
