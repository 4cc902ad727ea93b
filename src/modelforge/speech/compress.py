"""`modelforge compress RUN --quantize int8-dynamic` on a speech-recognition run: a new run directory whose
GRU and Linear layers hold int8 weights (per output channel for Linear, per tensor for the GRU's gates);
the convolutional front end and the activations stay float. Scored on the same held-out split as the
original (eval.json: WER and CER with the run's beam, and the original's beside them), so
`runs compare` shows what the int8 weights cost.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from torch import nn

from modelforge.errors import RunError
from modelforge.files import atomic_write_bytes, atomic_write_json
from modelforge.run import finish_run_directory, staged_run_directory

COPIED_FILES = ("config.yaml", "tokens.json", "preprocessing.json")


def dynamic_int8_skeleton(model: nn.Module) -> nn.Module:
    from modelforge.compress.quantize import dynamic_int8

    return dynamic_int8(model)  # GRU and Linear layers; the convolutions stay float


def compress_speech(source: str | Path, out: str | Path, options: Any) -> Path:
    """Write the int8-dynamic copy of a speech-recognition run to `out`; returns `out` (`compress` has
    checked the options against `Task.quantize_kinds`)."""
    from safetensors.torch import save

    from modelforge.compress.quantize import compact_state
    from modelforge.speech.data import clips_features, split_clips
    from modelforge.speech.metrics import speech_metrics
    from modelforge.speech.run import load_speech_run, settings_of

    run = load_speech_run(source)
    if run.model_info.get("quantization"):
        raise RunError(f"{source}: already quantized ({run.model_info['quantization']})")
    _, valid, test = split_clips(run.config.data, run.config.seed)  # before anything is written
    scored, split = (test, "test") if test is not None else (valid, "valid")
    settings = settings_of(run.config)
    features = clips_features(scored, settings, run.sample_rate)
    out = Path(out)
    quantized = dynamic_int8_skeleton(run.model)
    with staged_run_directory(out) as dest:
        for name in COPIED_FILES:
            shutil.copy2(run.path / name, dest / name)
        environment = json.loads((run.path / "environment.json").read_text())
        atomic_write_bytes(dest / "model.safetensors", save(compact_state(quantized)))
        info = {**run.model_info, "quantization": "int8-dynamic", "source": str(Path(source).resolve())}
        atomic_write_json(dest / "environment.json", environment)
        run.model = quantized
        started = time.perf_counter()
        hypotheses = run.transcribe(features)
        references = [run.characters.normalize(text) for text in scored.texts or []]
        evaluation: dict[str, Any] = {"split": split, **speech_metrics(hypotheses, references)}
        evaluation.update(
            beam=settings.beam,
            decode_seconds=round(time.perf_counter() - started, 3),
            original_wer=run.metrics.get("wer"),
            original_cer=run.metrics.get("cer"),
        )
        finish_run_directory(dest, evaluation, environment, info)
    return out


def load_int8_weights(float_model: nn.Module, weights_path: Path) -> nn.Module:
    """The int8-dynamic model of a compressed run, rebuilt from its compact safetensors file."""
    from modelforge.compress.quantize import load_quantized_weights

    return load_quantized_weights(dynamic_int8_skeleton(float_model), weights_path)
