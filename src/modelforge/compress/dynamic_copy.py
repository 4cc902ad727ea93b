"""The int8-dynamic copy of a run directory, for the tasks whose compressor is int8-dynamic alone
(seq2seq, speech recognition): the run's files, its Linear/LSTM/GRU weights int8 in a compact
safetensors file, and an eval.json the task scores on its own held-out split."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from modelforge.errors import RunError
from modelforge.files import atomic_write_bytes, atomic_write_json
from modelforge.run import finish_run_directory, staged_run_directory


def write_int8_dynamic_copy(
    run: Any,
    source: str | Path,
    out: str | Path,
    copied_files: tuple[str, ...],
    score: Callable[[nn.Module], dict[str, Any]],
) -> Path:
    """Write `run`'s int8-dynamic copy to `out` (staged: a failure leaves nothing); eval.json is
    `score(quantized model)` plus its `decode_seconds`. Returns `out`."""
    from safetensors.torch import save

    from modelforge.compress.quantize import compact_state, dynamic_int8

    if run.model_info.get("quantization"):
        raise RunError(f"{source}: already quantized ({run.model_info['quantization']})")
    quantized = dynamic_int8(run.model)  # without example batches: embeddings stay float
    with staged_run_directory(Path(out)) as dest:
        for name in copied_files:
            shutil.copy2(run.path / name, dest / name)
        environment = json.loads((run.path / "environment.json").read_text())
        atomic_write_bytes(dest / "model.safetensors", save(compact_state(quantized)))
        info = {**run.model_info, "quantization": "int8-dynamic", "source": str(Path(source).resolve())}
        atomic_write_json(dest / "environment.json", environment)
        started = time.perf_counter()
        evaluation = score(quantized)
        evaluation["decode_seconds"] = round(time.perf_counter() - started, 3)
        finish_run_directory(dest, evaluation, environment, info)
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
