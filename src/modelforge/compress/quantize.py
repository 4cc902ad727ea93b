"""int8 quantization: dynamic (Linear/LSTM/GRU/Embedding weights) and static with calibration (CNNs, FX mode).

Quantized weights are saved compactly in safetensors: per quantized weight an int8 tensor
plus its scales and zero points (`NAME.int8`, `NAME.scale`, `NAME.zero_point`); every other
tensor is saved as is (embedding rows keep float zero points: torch's per-row float qparams).
`model.json` records `"quantization": "int8-dynamic" | "int8-static"`,
and `load_quantized` rebuilds the quantized skeleton from the float architecture, then puts
the saved int8 values back exactly (no second rounding).

Static quantization uses torch.ao's FX mode with the x86 backend (fbgemm/onednn kernels),
which runs on this CPU; it needs a traceable image model (cnn, resnet).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelforge.errors import ModelforgeError
from modelforge.registry import Registry

QUANTIZERS: Registry[Any] = Registry("quantization")
STATIC_MODEL_TYPES = ("cnn", "resnet")
SUFFIXES = (".int8", ".scale", ".zero_point")


@contextlib.contextmanager
def quiet_quantization() -> Iterator[None]:
    """torch.ao.quantization warns that it moves to torchao; the eager/FX kernels still work here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, message=".*quantiz.*")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*reduce_range.*")  # x86 observers
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


# ----------------------------------------------------------------------------- building
def dynamic_int8(model: nn.Module, batches: list[dict[str, torch.Tensor]] | None = None) -> nn.Module:
    """Linear weights int8 per output channel, LSTM/GRU weights int8 per tensor; activations float.

    Embedding tables (most of a text model's file) are stored as uint8 rows with a float scale
    and offset per row when the quantized model still runs on `batches[0]`; a forward that
    reads `embedding.weight` itself fails that check, and then its tables stay float.
    """
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        float_qparams_weight_only_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    spec: dict[type[nn.Module], Any] = {
        nn.Linear: per_channel_dynamic_qconfig,
        nn.LSTM: default_dynamic_qconfig,
        nn.GRU: default_dynamic_qconfig,
    }
    with quiet_quantization():
        if batches and any(isinstance(m, nn.Embedding) for m in model.modules()):
            with_tables = {**spec, nn.Embedding: float_qparams_weight_only_qconfig}
            quantized = quantize_dynamic(copy.deepcopy(model).eval(), with_tables, dtype=torch.qint8)
            for module in quantized.modules():
                if _is_embedding(module):
                    module.register_forward_pre_hook(_contiguous_indices)
            if _runs_on(quantized, batches[0]):
                return quantized
        return quantize_dynamic(copy.deepcopy(model).eval(), spec, dtype=torch.qint8)


def _contiguous_indices(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The int8 lookup kernel needs contiguous indices; text encoders pass slices (padding trimmed)."""
    return tuple(a.contiguous() for a in args)


def _runs_on(model: nn.Module, inputs: dict[str, torch.Tensor]) -> bool:
    try:
        with torch.no_grad():
            model(inputs)
    except Exception:  # any failure means: keep the float tables
        return False
    return True


def static_int8(model: nn.Module, calibration: list[Any], float_ops: tuple[Callable[..., Any], ...] = ()) -> nn.Module:
    """Conv/Linear weights and activations int8 (conv+bn+relu fused), activation ranges from calibration;
    the functions in `float_ops` (e.g. `torch.cat`) take dequantized inputs and compute in float."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    mapping = get_default_qconfig_mapping("x86")
    for op in float_ops:
        mapping.set_object_type(op, None)
    with quiet_quantization(), torch.no_grad():
        prepared = prepare_fx(copy.deepcopy(model).eval(), mapping, example_inputs=(calibration[0],))
        for batch in calibration:
            prepared(batch)
        return convert_fx(prepared)


QUANTIZERS.add("int8-dynamic", dynamic_int8)
QUANTIZERS.add("int8-static", static_int8)


def example_inputs(spec: Any, rows: int = 2) -> dict[str, torch.Tensor]:
    """Zero inputs of the right shapes and dtypes for a model built from this input spec."""
    inputs: dict[str, torch.Tensor] = {}
    if spec.numeric_dim:
        inputs["numeric"] = torch.zeros(rows, spec.numeric_dim)
    if spec.category_cardinalities:
        inputs["category"] = torch.zeros(rows, len(spec.category_cardinalities), dtype=torch.long)
    if spec.text_vocab_size:
        inputs["text"] = torch.ones(rows, spec.text_length, dtype=torch.long)
    if spec.image_shape:
        inputs["image"] = torch.zeros(rows, *spec.image_shape)
    return inputs


# ----------------------------------------------------------------------------- compact tensors
def _packed_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Modules whose weights live in packed int8 form (quantized Linear/Conv/Embedding, dynamic LSTM/GRU)."""
    for name, module in model.named_modules():
        packed = hasattr(module, "set_weight_bias") and (callable(getattr(module, "weight", None)) or _is_rnn(module))
        if packed or _is_embedding(module):
            yield name, module


def _is_rnn(module: nn.Module) -> bool:
    return hasattr(module, "_weight_bias") and hasattr(module, "_all_weight_values")


def _is_embedding(module: nn.Module) -> bool:
    """A quantized embedding table: uint8 rows, weight-only (no bias)."""
    has_table = hasattr(module, "set_weight") and callable(getattr(module, "weight", None))
    return has_table and not hasattr(module, "set_weight_bias")


def _weights_of(module: nn.Module) -> dict[str, torch.Tensor | None]:
    if _is_rnn(module):
        parts = module._weight_bias()  # type: ignore[operator]
        return {**parts["weight"], **parts["bias"]}
    if _is_embedding(module):
        return {"weight": module.weight()}  # type: ignore[operator]
    return {"weight": module.weight(), "bias": module.bias()}  # type: ignore[operator]


def _set_weights(module: nn.Module, values: dict[str, torch.Tensor | None]) -> None:
    if _is_rnn(module):
        module.set_weight_bias(values)  # type: ignore[operator]  # one flat name → tensor dict
    elif _is_embedding(module):
        module.set_weight(values["weight"])  # type: ignore[operator]
    else:
        module.set_weight_bias(values["weight"], values["bias"])  # type: ignore[operator]


PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric, torch.per_channel_affine_float_qparams)


def pack_quantized(tensor: torch.Tensor, key: str) -> dict[str, torch.Tensor]:
    """int8 values, scales and zero points (float offsets for embedding rows, integers otherwise)."""
    if tensor.qscheme() in PER_CHANNEL:
        assert tensor.q_per_channel_axis() == 0, "per-channel weights are quantized along output channels"
        scale, zero_point = tensor.q_per_channel_scales().float(), tensor.q_per_channel_zero_points()
        if tensor.qscheme() != torch.per_channel_affine_float_qparams:
            zero_point = zero_point.int()
    else:
        scale, zero_point = torch.tensor([tensor.q_scale()]), torch.tensor([tensor.q_zero_point()], dtype=torch.int32)
    return {f"{key}.int8": tensor.int_repr(), f"{key}.scale": scale, f"{key}.zero_point": zero_point}


def unpack_quantized(tensors: dict[str, torch.Tensor], key: str, per_channel: bool) -> torch.Tensor:
    values, scale, zero_point = (tensors[key + suffix] for suffix in SUFFIXES)
    if per_channel and zero_point.is_floating_point():  # embedding rows: float scale and offset per row
        return torch._make_per_channel_quantized_tensor(values, scale, zero_point, 0)
    if per_channel:
        return torch._make_per_channel_quantized_tensor(values, scale.double(), zero_point.long(), 0)
    return torch._make_per_tensor_quantized_tensor(values, float(scale[0]), int(zero_point[0]))


def compact_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Tensors of a quantized model for safetensors: int8 weights + scales, the rest unchanged."""
    tensors: dict[str, torch.Tensor] = {}
    packed_prefixes = []
    for name, module in _packed_modules(model):
        packed_prefixes.append(f"{name}.")
        for key, value in _weights_of(module).items():
            if value is None:
                continue
            if value.is_quantized:
                tensors.update(pack_quantized(value, f"{name}.{key}"))
            else:
                tensors[f"{name}.{key}"] = value.detach().clone()
        if isinstance(getattr(module, "scale", None), float):  # static: output activation qparams
            tensors[f"{name}.scale"] = torch.tensor([module.scale])
            tensors[f"{name}.zero_point"] = torch.tensor([int(module.zero_point)], dtype=torch.int32)
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor) and not value.is_quantized and not key.startswith(tuple(packed_prefixes)):
            tensors[key] = value.detach().clone()
    return tensors


def dequantized_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A quantized model's tensors under the float architecture's names, each int8 weight
    dequantized ((value − zero point) × scale): what another runtime quantizes again on its own
    (`modelforge export` of an int8-dynamic run)."""
    tensors: dict[str, torch.Tensor] = {}
    packed_prefixes = []
    for name, module in _packed_modules(model):
        packed_prefixes.append(f"{name}.")
        for key, value in _weights_of(module).items():
            if value is not None:
                tensors[f"{name}.{key}"] = (value.dequantize() if value.is_quantized else value).detach().float()
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor) and not value.is_quantized and not key.startswith(tuple(packed_prefixes)):
            tensors[key] = value.detach().clone()
    return tensors


def quantized_parameter_count(model: nn.Module) -> int:
    """Logical parameters of a quantized model: packed weights and biases plus remaining float ones."""
    total = sum(p.numel() for p in model.parameters())
    for _, module in _packed_modules(model):
        total += sum(v.numel() for v in _weights_of(module).values() if v is not None)
    return total


# ----------------------------------------------------------------------------- loading
def quantized_skeleton(float_model: nn.Module, kind: str, spec: Any) -> nn.Module:
    """The quantized module structure for this architecture (weights are overwritten next)."""
    if kind == "int8-dynamic":
        return dynamic_int8(float_model, [example_inputs(spec)])
    if kind == "int8-static":
        return static_int8(float_model, [example_inputs(spec)])
    raise ModelforgeError(f"model.json quantization: unknown kind {kind!r}; known: {', '.join(QUANTIZERS.names())}")


def load_quantized(float_model: nn.Module, weights_path: Path, info: dict[str, Any], spec: Any) -> nn.Module:
    """Rebuild a quantized run's model from its compact safetensors file (exact int8 values)."""
    return load_quantized_weights(quantized_skeleton(float_model, info["quantization"], spec), weights_path)


def load_quantized_weights(model: nn.Module, weights_path: Path) -> nn.Module:
    """Put a compact safetensors file's exact int8 values (and activation scales) into a quantized skeleton."""
    from safetensors.torch import load_file

    from modelforge.errors import RunError

    tensors = load_file(str(weights_path))
    packed_prefixes = []
    try:
        for name, module in _packed_modules(model):
            packed_prefixes.append(f"{name}.")
            values: dict[str, torch.Tensor | None] = {}
            for key, current in _weights_of(module).items():
                full = f"{name}.{key}"
                if current is not None and current.is_quantized:
                    per_channel = current.qscheme() in PER_CHANNEL
                    values[key] = unpack_quantized(tensors, full, per_channel)
                else:
                    values[key] = tensors.get(full)
            _set_weights(module, values)
            if f"{name}.scale" in tensors and isinstance(getattr(module, "scale", None), float):
                module.scale = float(tensors[f"{name}.scale"][0])
                module.zero_point = int(tensors[f"{name}.zero_point"][0])
        _load_plain_tensors(model, tensors, tuple(packed_prefixes))
    except (KeyError, RuntimeError) as exc:
        raise RunError(f"{weights_path}: quantized weights do not load ({str(exc).splitlines()[0]})") from None
    return model.eval()


def _load_plain_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], packed: tuple[str, ...]) -> None:
    """Copy the float tensors in place (load_state_dict would also re-read the packed modules)."""
    state = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor) and not k.startswith(packed)}
    saved = {k: v for k, v in tensors.items() if not k.startswith(packed)}
    if state.keys() != saved.keys():
        missing, extra = sorted(state.keys() - saved.keys()), sorted(saved.keys() - state.keys())
        raise KeyError(f"tensors do not match the model: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for key, value in saved.items():
            state[key].copy_(value)
