"""The robust audio front end: silence trimming, loudness, length by stretching, waveform augmentations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelforge.config import AudioFeature
from modelforge.data.audio import AudioEncoder, log_mel, read_wav, write_wav
from modelforge.data.audio_augment import (
    PERTURBATIONS,
    WaveAugment,
    add_noise,
    augment_waveform,
    band_pass,
    eight_bit,
    gain,
    pad,
    perturbations_named,
    round_trip,
    speed,
)
from modelforge.data.audio_vad import normalize_loudness, remove_dc, trim_silence, voiced_span
from modelforge.errors import ConfigError

RATE = 8000


def word(seconds: float = 0.3, level: float = 0.3, hz: float = 500.0) -> np.ndarray:
    """A tone with a soft attack and release, like a syllable."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * hz * t) * np.hanning(len(t)) ** 0.3).astype(np.float32)


def test_vad_finds_the_word_inside_silence_and_quiet_noise() -> None:
    rng = np.random.default_rng(0)
    clip = np.concatenate([np.zeros(1600), word(), np.zeros(3200)]).astype(np.float32)
    clip += rng.normal(0, 0.3 * 10 ** (-60 / 20), len(clip)).astype(np.float32)  # a room 60 dB below the word
    start, end = voiced_span(clip, RATE, below_peak_db=35)
    assert abs(start - 1600) < 80 and abs(end - (1600 + 2400)) < 80  # within 10 ms of the word's edges
    trimmed = trim_silence(clip, RATE, 35, margin_ms=25)
    assert len(trimmed) == end - start + 2 * 200


def test_trimming_is_exact_under_digital_silence_and_gain_only_scales() -> None:
    clip = word()
    padded = np.concatenate([np.zeros(2400, np.float32), clip, np.zeros(2400, np.float32)])
    np.testing.assert_array_equal(trim_silence(padded, RATE, 35, 25), trim_silence(clip, RATE, 35, 25))
    louder = normalize_loudness(trim_silence(clip * 3.16, RATE, 35, 25))
    np.testing.assert_allclose(louder, normalize_loudness(trim_silence(clip, RATE, 35, 25)), atol=1e-6)
    assert np.sqrt(np.mean(louder.astype(np.float64) ** 2)) == pytest.approx(0.1, rel=1e-4)
    assert trim_silence(np.zeros(800, np.float32), RATE, 35, 25).size == 800 + 400  # all silence: kept


def test_the_floor_makes_a_recordings_noise_floor_read_the_same() -> None:
    """Digital silence and a hiss 70 dB below the words: far apart under the fixed floor, equal under floor_db."""
    clip = np.concatenate([word(), np.zeros(1600, np.float32), word(hz=1200.0)])
    hiss = clip + np.random.default_rng(0).normal(0, 0.3 * 10 ** (-70 / 20), len(clip)).astype(np.float32)
    fixed = [log_mel(c, RATE, 16, 200, 80) for c in (clip, hiss)]
    floored = [log_mel(c, RATE, 16, 200, 80, floor_db=50.0) for c in (clip, hiss)]
    assert np.abs(fixed[0] - fixed[1]).max() > 2.0
    assert np.abs(floored[0] - floored[1]).max() < 0.05
    assert floored[0].max() == pytest.approx(fixed[0].max(), abs=1e-4)  # the words themselves are untouched
    assert floored[0].min() == pytest.approx(floored[0].max() - 50 * np.log(10) / 10, abs=0.01)


def test_bands_at_the_floor_in_every_clip_are_not_stretched(tmp_path: Path) -> None:
    """Pure tones leave most bands at the floor in every training clip; noise in one of those bands must not
    read as dozens of deviations (it did, and training on noisy renderings collapsed)."""
    tones = [word(hz=hz, level=level) for hz in (400.0, 1600.0) for level in (0.1, 0.3)]
    paths = pd.Series([str(write_wav(tmp_path / f"tone{i}.wav", t, RATE)) for i, t in enumerate(tones)])
    encoder = robust_encoder().fit(paths)
    assert min(encoder.std_) >= 1.0
    noisy = add_noise(tones[0], 20.0, seed=0)
    features = encoder.transform(pd.Series([str(write_wav(tmp_path / "noisy.wav", noisy, RATE))]))
    assert np.abs(features).max() < 10.0


def robust_encoder(**changes: object) -> AudioEncoder:
    """An encoder with the config's defaults (the robust front end), as `init` + `train` would build it."""
    options = AudioFeature(name="clip", **changes).model_dump(exclude={"type"})
    return AudioEncoder(**{**options, "n_mels": 16})


def test_encoder_features_ignore_silence_padding_gain_and_length(tmp_path: Path) -> None:
    clips = {
        "plain": word(0.3),
        "padded": pad(word(0.3), RATE, 0.3, 0.3),
        "louder": gain(word(0.3), 10.0),
        "quieter": gain(word(0.3), -10.0),
    }
    paths = pd.Series([str(write_wav(tmp_path / f"{k}.wav", v, RATE)) for k, v in clips.items()])
    long = pd.Series([str(write_wav(tmp_path / "long.wav", word(0.9), RATE))])
    encoder = robust_encoder().fit(pd.concat([paths, long], ignore_index=True))
    features = encoder.transform(paths)
    assert features.shape == (4, 1, 16, encoder.n_frames)
    for row in range(1, 4):
        np.testing.assert_allclose(features[row], features[0], atol=2e-3)
    assert encoder.transform(long).shape == (1, *features.shape[1:])  # a clip three times as long: same frames


def test_a_microphones_dc_offset_does_not_move_the_features(tmp_path: Path) -> None:
    """An offset a fifth of the word's spread (one FSDD speaker's clips have one) clicks where the clip meets
    padding; the front end removes it first, so the features match the clip without it."""
    clean = word(0.3) + np.random.default_rng(0).normal(0, 1e-4, 2400).astype(np.float32)  # no exact zeros
    offset = clean - 0.2 * clean.std()
    paths = pd.Series(
        [str(write_wav(tmp_path / f"{name}.wav", clip, RATE)) for name, clip in (("clean", clean), ("dc", offset))]
    )
    features = robust_encoder().fit(paths).transform(paths)
    as_recorded = robust_encoder(remove_dc=False).fit(paths).transform(paths)
    moved, moved_as_recorded = np.abs(features[1] - features[0]).max(), np.abs(as_recorded[1] - as_recorded[0]).max()
    assert moved < 0.1 < 1.0 < moved_as_recorded, (moved, moved_as_recorded)


def test_dc_removal_leaves_padding_at_zero_and_shifts_the_zeros_inside() -> None:
    padded = np.array([0, 0, 0, -0.5, 0, 0.5, -1, 0, 0], np.float32)  # a zero inside: an 8-bit clip's zero level
    np.testing.assert_allclose(remove_dc(padded), [0, 0, 0, -0.25, 0.25, 0.75, -0.75, 0, 0], atol=1e-7)
    assert remove_dc(np.zeros(4, np.float32)).tolist() == [0.0] * 4


def test_length_keys_belong_to_their_mode() -> None:
    with pytest.raises(ValueError, match="duration is read by length: pad"):
        AudioFeature(name="clip", duration=1.0)
    with pytest.raises(ValueError, match="frames is read by length: stretch"):
        AudioFeature(name="clip", length="pad", frames=40)
    assert AudioFeature(name="clip", length="pad", duration=1.0).duration == 1.0


def test_augmentations_keep_their_length_contracts() -> None:
    clip = word(0.5)
    assert len(pad(clip, RATE, 0.25, 0.1)) == len(clip) + 2000 + 800
    assert len(gain(clip, 6.0)) == len(clip) and np.abs(gain(clip, 20.0)).max() > 1.0  # a level, not clipping
    assert len(speed(clip, 1.1)) == round(len(clip) / 1.1) and len(speed(clip, 0.9)) == round(len(clip) / 0.9)
    assert len(round_trip(clip, RATE, 4000)) == len(clip) and len(band_pass(clip, RATE, 300, 3400)) == len(clip)
    noisy = add_noise(clip, 20.0, seed=1)
    snr = 10 * np.log10(np.mean(clip.astype(np.float64) ** 2) / np.mean((noisy - clip).astype(np.float64) ** 2))
    assert len(noisy) == len(clip) and snr == pytest.approx(20.0, abs=0.01)
    for variants in PERTURBATIONS.values():
        for shift in variants.values():
            assert shift(clip, RATE).dtype == np.float32


def test_an_eight_bit_chain_rounds_to_its_levels_at_the_clips_level() -> None:
    clip = word(0.5, level=0.3)
    linear = eight_bit(clip, peak=0.25)  # the loudest sample 32 steps of 1/128 from zero
    steps = linear * (0.25 / 0.3) * 128
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert (
        np.abs(linear).max() == pytest.approx(0.3, rel=1e-3) and 0.0 < np.mean(linear == 0) < np.mean(clip == 0) + 0.2
    )
    quiet = (np.abs(clip) > 0.3 / 1000) & (np.abs(clip) < 0.3 / 64)  # under half a step: linear PCM loses them
    assert np.all(linear[quiet] == 0) and np.mean(eight_bit(clip, 0.25, mu_law=True)[quiet] != 0) > 0.5
    assert eight_bit(np.zeros(4, np.float32), 0.5).tolist() == [0.0] * 4


def test_augmentations_are_seeded() -> None:
    options = WaveAugment(pad=0.3, gain_db=10, speed=0.1, resample=0.5, band=0.5, snr_db=10)
    first = augment_waveform(word(), RATE, options, np.random.default_rng([0, 3, 1]))
    again = augment_waveform(word(), RATE, options, np.random.default_rng([0, 3, 1]))
    other = augment_waveform(word(), RATE, options, np.random.default_rng([0, 3, 2]))
    np.testing.assert_array_equal(first, again)
    assert len(first) != len(other) or not np.array_equal(first, other)
    assert not WaveAugment().active


def test_encoder_renders_seeded_copies_of_each_training_clip(tmp_path: Path) -> None:
    paths = pd.Series([str(write_wav(tmp_path / f"{i}.wav", word(0.2 + 0.1 * i), RATE)) for i in range(3)])
    encoder = robust_encoder().fit(paths)
    encoder.augment = {**encoder.augment, "copies": 2}
    variants = encoder.augmented(paths, seed=7)
    assert variants is not None and variants.shape == (3, 2, 1, 16, encoder.n_frames)
    np.testing.assert_array_equal(variants, encoder.augmented(paths, seed=7))
    assert not np.array_equal(variants, encoder.augmented(paths, seed=8))
    encoder.augment = {**encoder.augment, "copies": 0}
    assert encoder.augmented(paths, seed=7) is None


def test_unknown_perturbation_lists_the_known_ones() -> None:
    assert set(perturbations_named("silence,gain")) == {"silence_0.3s", "gain_+10dB", "gain_-10dB"}
    with pytest.raises(ConfigError, match="unknown perturbation 'echo'; choose from silence, gain"):
        perturbations_named("silence,echo")


def test_write_wav_round_trips(tmp_path: Path) -> None:
    clip = word()
    samples, rate = read_wav(write_wav(tmp_path / "w.wav", clip, RATE))
    assert rate == RATE and np.array_equal(samples, clip)
    louder, _ = read_wav(write_wav(tmp_path / "louder.wav", clip * 4, RATE))  # float WAV: above full scale kept
    assert np.array_equal(louder, clip * 4)
