"""`modelforge compress RUN --quantize int8-dynamic` on a speech-recognition run: a new run directory whose
GRU and Linear layers hold int8 weights (per output channel for Linear, per tensor for the GRU's gates);
the convolutional front end and the activations stay float. Scored on the same held-out split as the
original (eval.json: WER and CER with the run's beam, and the original's beside them), so
`runs compare` shows what the int8 weights cost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

COPIED_FILES = ("config.yaml", "tokens.json", "preprocessing.json")


def compress_speech(source: str | Path, out: str | Path, options: Any) -> Path:
    """Write the int8-dynamic copy of a speech-recognition run to `out`; returns `out` (`compress` has
    checked the options against `Task.quantize_kinds`)."""
    from modelforge.compress.quantize import dynamic_int8
    from modelforge.compress.run_copy import refuse_quantized, write_quantized_copy
    from modelforge.speech.data import clips_features, split_clips
    from modelforge.speech.metrics import speech_metrics
    from modelforge.speech.run import load_speech_run, settings_of, transcribe_features

    run = load_speech_run(source)
    refuse_quantized(run, source)
    _, valid, test = split_clips(run.config.data, run.config.seed)
    scored, split = (test, "test") if test is not None else (valid, "valid")
    settings = settings_of(run.config)
    features = clips_features(scored, settings, run.sample_rate)  # before anything is written

    def score(quantized: nn.Module) -> dict[str, Any]:
        started = time.perf_counter()
        hypotheses = transcribe_features(quantized, run.characters, features, settings.beam, settings.warps)
        references = [run.characters.normalize(text) for text in scored.texts or []]
        return {
            "split": split,
            **speech_metrics(hypotheses, references),
            "beam": settings.beam,
            "decode_seconds": round(time.perf_counter() - started, 3),
            "original_wer": run.metrics.get("wer"),
            "original_cer": run.metrics.get("cer"),
        }

    quantized = dynamic_int8(run.model)  # GRU and Linear layers; the convolutions stay float
    return write_quantized_copy(run, source, out, COPIED_FILES, quantized, {"quantization": "int8-dynamic"}, score)
