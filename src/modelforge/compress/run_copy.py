"""The quantized copy of a run directory, for the tasks with a compressor of their own (seq2seq, speech
recognition: int8-dynamic; detection: int8-static): the run's files, the quantized weights in a compact
safetensors file, model.json saying how they were quantized, and an eval.json the task scores on its
own held-out split; and how those runs load their weights back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from modelforge.errors import RunError
from modelforge.files import atomic_write_bytes
from modelforge.run import finish_run_directory, staged_run_directory


def refuse_quantized(run: Any, source: str | Path) -> None:
    """RunError when `run` is already a quantized copy."""
    if run.model_info.get("quantization"):
        raise RunError(f"{source}: already quantized ({run.model_info['quantization']})")


def write_quantized_copy(
    run: Any,
    source: str | Path,
    out: str | Path,
    copied_files: tuple[str, ...],
    quantized: nn.Module,
    info: dict[str, Any],
    score: Callable[[nn.Module], dict[str, Any]],
) -> Path:
    """Write `run`'s copy with the `quantized` model to `out` (staged: a failure leaves nothing):
    `copied_files`, the compact weights, model.json = the run's with `info` and the source over it,
    eval.json = `score(quantized)`. Returns `out`."""
    from safetensors.torch import save

    from modelforge.compress.quantize import compact_state

    with staged_run_directory(Path(out)) as dest:
        for name in copied_files:
            shutil.copy2(run.path / name, dest / name)
        environment = json.loads((run.path / "environment.json").read_text())
        atomic_write_bytes(dest / "model.safetensors", save(compact_state(quantized)))
        model_info = {**run.model_info, **info, "source": str(Path(source).resolve())}
        finish_run_directory(dest, score(quantized), environment, model_info)
    return Path(out)


def load_run_weights(model: nn.Module, weights_path: Path, quantization: str | None) -> nn.Module:
    """`model` with a run's saved weights: its float state dict, or for an int8-dynamic copy the exact
    saved int8 values in `model`'s quantized skeleton. RunError when they do not load."""
    if quantization == "int8-dynamic":
        from modelforge.compress.quantize import dynamic_int8, load_quantized_weights

        return load_quantized_weights(dynamic_int8(model), weights_path)
    if quantization:
        raise RunError(f"{weights_path}: quantization {quantization!r} is not one this task's runs load")
    from safetensors.torch import load_file

    try:
        model.load_state_dict(load_file(str(weights_path)))
    except (RuntimeError, OSError, KeyError) as exc:
        raise RunError(f"{weights_path}: weights do not load ({str(exc).splitlines()[0]})") from None
    return model
