"""Robustness of an audio run: its headline metric on the same clips under recording shifts.

`evaluate RUN --data F --perturb silence,gain,speed,noise` rewrites each clip as that shift would
have recorded it (`data/audio_augment.py:PERTURBATIONS`, deterministic: seeded noise), into a
temporary folder of WAV files, and evaluates the run on them beside the clean clips — the gap a
user would otherwise meet in production.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from modelforge.errors import ConfigError


def audio_encoder_of(run: Any) -> Any:
    """The run's audio feature encoder; ConfigError in one line when it has none."""
    encoders = getattr(getattr(run, "preprocessor", None), "encoders", None) or []
    audio = [e for e in encoders if getattr(e, "kind", None) == "audio"]
    if not audio:
        raise ConfigError(
            f"--perturb: {run.path} has no audio feature; perturbations are recording shifts of audio clips"
        )
    return audio[0]


def perturbed_metrics(run: Any, data: str | Path | pd.DataFrame, perturb: str, metric: str) -> dict[str, Any]:
    """{"metric": metric, "clean": value, "<shift>": value, ...}: `metric` of `run.evaluate` on the
    clean clips and on each variant of the shifts named in `perturb` (comma separated)."""
    from modelforge.data.audio import write_wav
    from modelforge.data.audio_augment import perturbations_named
    from modelforge.data.readers import read_data

    encoder = audio_encoder_of(run)
    shifts = perturbations_named(perturb)
    frame = data if isinstance(data, pd.DataFrame) else read_data(data, run.config.data.bad_rows)
    clean = run.evaluate(frame)
    if metric not in clean:
        raise ConfigError(f"--perturb: metric {metric!r} not among the run's metrics ({', '.join(clean)})")
    results: dict[str, Any] = {"metric": metric, "clean": clean[metric]}
    recordings = [encoder.decode(value, row) for row, value in enumerate(frame[encoder.name])]
    with tempfile.TemporaryDirectory(prefix="modelforge-perturb-") as folder:
        for name, shift in shifts.items():
            paths = [
                str(write_wav(Path(folder) / f"{name}-{row}.wav", shift(samples, rate), rate))
                for row, (samples, rate) in enumerate(recordings)
            ]
            results[name] = run.evaluate(frame.assign(**{encoder.name: paths}))[metric]
    return results
