"""Speaker-independence fixes: recording level and clip length do not leak into the features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.io import wavfile

from modelforge.data.audio import AudioEncoder


def write_tone(path: Path, seconds: float, level: float, rate: int = 8000) -> str:
    t = np.arange(int(seconds * rate)) / rate
    wave = level * (np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1200 * t))
    wavfile.write(path, rate, (wave * 65536).astype(np.int32))  # 32-bit PCM: no rounding noise in quiet bands
    return str(path)


def test_peak_gain_makes_loud_and_quiet_recordings_equal(tmp_path: Path) -> None:
    quiet, loud = write_tone(tmp_path / "quiet.wav", 0.5, 800), write_tone(tmp_path / "loud.wav", 0.5, 16000)
    encoder = AudioEncoder("path", n_mels=16, normalize="utterance", gain="peak").fit(pd.Series([quiet, loud]))
    features = encoder.transform(pd.Series([quiet, loud]))
    np.testing.assert_allclose(features[0], features[1], atol=1e-3)
    unscaled = AudioEncoder("path", n_mels=16, normalize="band", gain="none").fit(pd.Series([quiet, loud]))
    assert np.abs(unscaled.transform(pd.Series([quiet, loud])).std(axis=0)).max() > 0.5


def test_utterance_mean_ignores_the_padding(tmp_path: Path) -> None:
    short, long = write_tone(tmp_path / "short.wav", 0.2, 8000), write_tone(tmp_path / "long.wav", 0.6, 8000)
    encoder = AudioEncoder("path", n_mels=16, normalize="utterance", gain="peak").fit(pd.Series([short, long]))
    raw = encoder._features([encoder._waveform(short, 0)])
    centred = encoder._remove_utterance_mean(raw, [encoder._waveform(short, 0)])
    frames = 1 + int(0.2 * 8000) // encoder._hop
    assert np.abs(centred[0, :, :frames].mean(axis=1)).max() < 1e-4  # the clip's own frames are centred
    assert np.all(centred[0, :, frames:] == 0)  # padding sits at the clip's mean, not at the log floor
