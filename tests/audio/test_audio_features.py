"""Audio decoding, log-mel/MFCC features, JSON round trip, augmentation, models — on real FSDD clips."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modelforge.data.audio import AudioEncoder, audio_augmenter, log_mel, read_wav, resample
from modelforge.data.features import encoder_from_json
from modelforge.data.preprocess import InputSpec
from modelforge.errors import DataError
from modelforge.models import build_model

FSDD = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "fsdd"
needs_fsdd = pytest.mark.skipif(not (FSDD / "files.csv").exists(), reason=f"{FSDD} not present")


def write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2, channels: int = 1) -> Path:
    scaled = {1: lambda s: (s * 127 + 128).astype(np.uint8), 2: lambda s: (s * 32767).astype("<i2")}[width](samples)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(np.repeat(scaled, channels).tobytes())
    return path


def tone(hz: float, seconds: float, rate: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def test_read_wav_mixes_stereo_and_decodes_8bit(tmp_path: Path) -> None:
    stereo, rate = read_wav(write_wav(tmp_path / "s.wav", tone(440, 0.1, 8000), 8000, channels=2))
    assert rate == 8000 and stereo.shape == (800,)
    eight, _ = read_wav(write_wav(tmp_path / "e.wav", tone(440, 0.1, 8000), 8000, width=1))
    assert np.abs(eight - tone(440, 0.1, 8000)).max() < 0.02


def test_resample_keeps_the_pitch() -> None:
    down = resample(tone(1000, 1.0, 16000), 16000, 8000)
    assert len(down) == 8000
    spectrum = np.abs(np.fft.rfft(down))
    assert abs(int(spectrum.argmax()) - 1000) <= 1  # 1 Hz bins over one second


def test_log_mel_puts_a_tone_in_the_right_band() -> None:
    low, high = log_mel(tone(300, 0.5, 8000), 8000, 32, 200, 80), log_mel(tone(3000, 0.5, 8000), 8000, 32, 200, 80)
    assert low.shape == (32, 51)
    assert low.mean(1).argmax() < 10 < high.mean(1).argmax()


def test_undecodable_audio_names_the_row_and_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav")
    encoder = AudioEncoder("clip")
    with pytest.raises(DataError, match=r"column 'clip' row 1: .*broken.wav: cannot decode audio"):
        encoder.fit(pd.Series([str(bad)]))
    with pytest.raises(DataError, match="audio file not found"):
        encoder.fit(pd.Series([str(tmp_path / "missing.wav")]))


@needs_fsdd
@pytest.mark.parametrize("representation", ["logmel", "mfcc"])
def test_encoder_fits_normalizes_and_round_trips(representation: str) -> None:
    files = pd.read_csv(FSDD / "files.csv").head(40)
    encoder = AudioEncoder("path", root=str(FSDD), representation=representation, n_mels=32, n_mfcc=13, hop_ms=15)
    features = encoder.fit(files["path"]).transform(files["path"])
    bands = 13 if representation == "mfcc" else 32
    assert features.shape == (40, 1, bands, encoder.n_frames) and features.dtype == np.float32
    assert np.allclose(features.mean(axis=(0, 1, 3)), 0, atol=1e-3)
    assert np.allclose(features.std(axis=(0, 1, 3)), 1, atol=1e-2)
    restored = encoder_from_json("audio", "path", json.loads(json.dumps(encoder.to_json())))
    assert np.array_equal(restored.transform(files["path"]), features)


def test_augmenter_keeps_shape_and_changes_values() -> None:
    torch.manual_seed(0)
    batch = torch.randn(8, 1, 32, 40)
    augment = audio_augmenter(shift=0.1, warp=0.1, noise=0.1, freq_masks=2, time_masks=2)
    assert augment is not None and audio_augmenter() is None
    out = augment(batch)
    assert out.shape == batch.shape and not torch.equal(out, batch)
    masks_only = audio_augmenter(freq_masks=3, freq_mask_width=8)(batch)  # type: ignore[misc]
    whole_bands = (masks_only == 0).all(dim=3).any(dim=2).float().mean()
    assert whole_bands > 0.5  # most clips lost at least one whole band to the masks


def test_stretch_moves_events_along_time_from_the_first_frame() -> None:
    torch.manual_seed(0)
    batch = torch.zeros(64, 1, 8, 40)
    batch[..., 0] = 5.0  # anchored: the first frame stays where it is
    batch[..., 20] = 1.0  # an event halfway: read from frame 20·a, it lands near 20 / a
    out = audio_augmenter(stretch=0.3)(batch)  # type: ignore[misc]
    assert out.shape == batch.shape and torch.allclose(out[..., 0], batch[..., 0])
    peaks = out[:, 0, 0, 5:].argmax(dim=1) + 5
    assert peaks.min() >= 20 / 1.3 - 1 and peaks.max() <= 20 / 0.7 + 1
    assert len(set(peaks.tolist())) > 5  # each clip its own rate


@pytest.mark.parametrize("name", ["audio_cnn", "audio_transformer"])
def test_audio_models_forward_backward(name: str) -> None:
    spec = InputSpec(audio_shape=(1, 20, 30))
    options = {"width": 32, "depth": 1} if name == "audio_transformer" else {"channels": [8, 16]}
    model = build_model(name, spec, 10, options)
    out = model({"audio": torch.randn(4, 1, 20, 30)})
    out.sum().backward()
    assert out.shape == (4, 10)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
