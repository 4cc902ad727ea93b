"""The audio front end before features: silence trimming (energy voice activity detection) and loudness.

Both are relative to the clip itself, so neither the recording level nor silence around the words
changes what the spectrogram sees; a microphone's DC offset is removed before either:

- `remove_dc` subtracts the recording's mean. An offset (one FSDD speaker's clips, 8-bit recordings
  stored as 16-bit, sit at -0.007, a fifth of their spread) makes a step where the clip meets the zeros
  of padding or of added silence, a click across every band in the first and last frames, and leaks
  into the lowest mel band.
- `voiced_span` keeps the samples whose short-time loudness is within `below_peak_db` of the
  clip's loudest moment (plus a margin). The loudness is a centred moving RMS with zeros beyond
  the ends, and a sample of digital silence (exactly 0) never counts as voiced, so a clip padded
  with digital silence gives the very same span, sample for sample.
- `normalize_loudness` scales the kept samples to a fixed RMS (rather than to peak 1: one click
  sets the peak, the RMS is the whole word's).

`export/bundle_predictor.py` repeats these lines with numpy alone; keep the two the same.
"""

from __future__ import annotations

import numpy as np

ENVELOPE_MS = 10.0
TARGET_RMS = 0.1  # -20 dBFS


def remove_dc(samples: np.ndarray) -> np.ndarray:
    """The recording less its mean. The recording runs from the first nonzero sample to the last: digital
    silence beyond them (exact zeros: padding) stays zero, so a padded clip keeps the very same span and
    features, while zeros inside (an 8-bit recording's zero level) shift with the samples around them."""
    recorded = np.flatnonzero(samples)
    out = samples.astype(np.float32)  # a copy
    if len(recorded):
        start, end = recorded[0], recorded[-1] + 1
        out[start:end] -= np.float32(samples[start:end].mean(dtype=np.float64))
    return out


def loudness_envelope(samples: np.ndarray, rate: int, window_ms: float = ENVELOPE_MS) -> np.ndarray:
    """Per-sample RMS over a centred window of `window_ms`, counting zeros beyond the clip's ends."""
    width = max(1, round(rate * window_ms / 1000))
    padded = np.pad(samples.astype(np.float64) ** 2, (width // 2, width - width // 2))
    total = np.concatenate([[0.0], np.cumsum(padded)])
    return np.sqrt(np.maximum(total[width : width + len(samples)] - total[: len(samples)], 0.0) / width)


def voiced_span(samples: np.ndarray, rate: int, below_peak_db: float) -> tuple[int, int]:
    """[start, end) of the nonzero samples where the loudness is within `below_peak_db` of its peak."""
    envelope = loudness_envelope(samples, rate)
    peak = float(envelope.max(initial=0.0))
    if peak <= 0.0:  # all silence: nothing to find, keep it whole
        return 0, len(samples)
    loud = np.flatnonzero((envelope >= peak * 10.0 ** (-below_peak_db / 20.0)) & (samples != 0))
    return int(loud[0]), int(loud[-1]) + 1


def trim_silence(samples: np.ndarray, rate: int, below_peak_db: float, margin_ms: float) -> np.ndarray:
    """The voiced span with `margin_ms` either side (zeros where the clip ends sooner)."""
    start, end = voiced_span(samples, rate, below_peak_db)
    margin = round(rate * margin_ms / 1000)
    return np.pad(samples, (margin, margin))[start : end + 2 * margin]


def normalize_loudness(samples: np.ndarray, target_rms: float = TARGET_RMS) -> np.ndarray:
    """Samples scaled to RMS `target_rms` (silence stays silence)."""
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
    return (samples * (target_rms / rms)).astype(np.float32) if rms > 1e-8 else samples.astype(np.float32)
