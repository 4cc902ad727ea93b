"""`modelforge compress RUN --quantize int8-dynamic` on a speech-recognition run: a new run directory whose
GRU and Linear layers hold int8 weights (per output channel for Linear, per tensor for the GRU's gates);
the convolutional front end and the activations stay float. Scored on the same held-out split as the
original (eval.json: WER and CER with the run's beam, and the original's beside them), so
`runs compare` shows what the int8 weights cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

COPIED_FILES = ("config.yaml", "tokens.json", "preprocessing.json")


def compress_speech(source: str | Path, out: str | Path, options: Any) -> Path:
    """Write the int8-dynamic copy of a speech-recognition run to `out`; returns `out` (`compress` has
    checked the options against `Task.quantize_kinds`)."""
    from modelforge.compress.dynamic_copy import write_int8_dynamic_copy
    from modelforge.speech.data import clips_features, split_clips
    from modelforge.speech.metrics import speech_metrics
    from modelforge.speech.run import load_speech_run, settings_of, transcribe_features

    run = load_speech_run(source)
    _, valid, test = split_clips(run.config.data, run.config.seed)
    scored, split = (test, "test") if test is not None else (valid, "valid")
    settings = settings_of(run.config)

    def score(quantized: nn.Module) -> dict[str, Any]:
        features = clips_features(scored, settings, run.sample_rate)
        hypotheses = transcribe_features(quantized, run.characters, features, settings.beam)
        references = [run.characters.normalize(text) for text in scored.texts or []]
        return {
            "split": split,
            **speech_metrics(hypotheses, references),
            "beam": settings.beam,
            "original_wer": run.metrics.get("wer"),
            "original_cer": run.metrics.get("cer"),
        }

    return write_int8_dynamic_copy(run, source, out, COPIED_FILES, score)
