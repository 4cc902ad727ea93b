"""Audio features: WAV files → log-mel spectrograms or MFCCs, normalized per band.

Decoding uses the standard library's `wave` (PCM 8/16/24/32-bit, any channel count, mixed
to mono); resampling and the short-time Fourier transform are numpy, so torchaudio is not
needed. `AudioEncoder` follows the scikit-learn contract of the other encoders: parameters in
`__init__`, `fit` learns the clip length and per-band statistics on train, JSON state.
`audio_augmenter` is the train-time batch transform (time shift, band warp, noise, SpecAugment masks).
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelforge.errors import DataError, NotFittedError

AUDIO_SUFFIXES = {".wav", ".wave"}
LOG_FLOOR = 1e-6


# ----------------------------------------------------------------------------- decoding
def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate; DataError names the file if it does not decode."""
    try:
        with wave.open(str(path), "rb") as handle:
            rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
            raw = handle.readframes(handle.getnframes())
    except FileNotFoundError:
        raise DataError(f"{path}: audio file not found") from None
    except (wave.Error, EOFError, OSError) as exc:
        raise DataError(f"{path}: cannot decode audio as PCM WAV ({exc})") from None
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        bytes3 = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = bytes3[:, 0] | (bytes3[:, 1] << 8) | (bytes3[:, 2] << 16)
        samples = (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)).astype(np.float32)
    elif width == 4:
        samples = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    else:
        raise DataError(f"{path}: unsupported sample width {width} bytes")
    samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels).mean(axis=1)
    if samples.size == 0:
        raise DataError(f"{path}: the audio file has no samples")
    return samples, rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling in the frequency domain (like scipy.signal.resample)."""
    if rate == target:
        return samples
    n_out = max(1, round(len(samples) * target / rate))
    spectrum = np.fft.rfft(samples)
    keep = min(len(spectrum), n_out // 2 + 1)
    out = np.fft.irfft(spectrum[:keep], n=n_out) * (n_out / len(samples))
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- spectrograms
def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """n_mels × (n_fft//2 + 1) triangular filters, equally spaced on the HTK mel scale."""
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / np.maximum(center - lower, 1e-9)
    falling = (upper - bins[None]) / np.maximum(upper - center, 1e-9)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II as a matrix (n_out × n_in), for MFCCs."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None]
    matrix = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def log_mel(samples: np.ndarray, sample_rate: int, n_mels: int, window: int, hop: int) -> np.ndarray:
    """n_mels × frames log power, frames = 1 + len // hop (centered windows, zero padded)."""
    n_fft = 1 << max(0, (window - 1).bit_length())
    padded = np.pad(samples, (n_fft // 2, n_fft // 2))
    n_frames = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None] + hop * np.arange(n_frames)[:, None]
    taper = np.zeros(n_fft, dtype=np.float32)
    start = (n_fft - window) // 2
    taper[start : start + window] = np.hanning(window)
    power = np.abs(np.fft.rfft(padded[index] * taper, axis=1)) ** 2
    mel = mel_filterbank(n_mels, n_fft, sample_rate) @ power.T
    return np.log(mel + LOG_FLOOR).astype(np.float32)


# ----------------------------------------------------------------------------- encoder
class AudioEncoder:
    """WAV paths → float32 N×1×bands×frames, fixed length, normalized per band with train statistics."""

    kind = "audio"

    def __init__(
        self,
        name: str,
        root: str | None = None,
        sample_rate: int | None = None,
        duration: float | None = None,
        representation: str = "logmel",
        n_mels: int = 40,
        n_mfcc: int = 20,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        normalize: str = "band",
        augment: dict[str, Any] | None = None,
        gain: str = "none",
    ) -> None:
        self.name, self.root, self.sample_rate, self.duration = name, root, sample_rate, duration
        self.representation, self.n_mels, self.n_mfcc = representation, n_mels, n_mfcc
        self.window_ms, self.hop_ms, self.normalize = window_ms, hop_ms, normalize
        self.augment = augment or {}
        self.gain = gain
        self.sample_rate_: int | None = None
        self.samples_: int | None = None
        self.mean_: list[float] | None = None
        self.std_: list[float] | None = None

    @property
    def bands(self) -> int:
        return self.n_mfcc if self.representation == "mfcc" else self.n_mels

    @property
    def frames(self) -> int:
        self._check_fitted("samples_")
        return 1 + int(self.samples_) // self._hop  # type: ignore[arg-type]

    @property
    def _hop(self) -> int:
        return max(1, round(self.sample_rate_ * self.hop_ms / 1000))  # type: ignore[operator]

    @property
    def _window(self) -> int:
        return max(2, round(self.sample_rate_ * self.window_ms / 1000))  # type: ignore[operator]

    def _check_fitted(self, attr: str) -> None:
        if getattr(self, attr, None) is None:
            raise NotFittedError(f"AudioEncoder for {self.name!r} is not fitted: call fit first")

    def _path(self, value: Any, row: int) -> Path:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise DataError(f"column {self.name!r} row {row + 1}: missing audio path")
        path = Path(str(value)).expanduser()
        if not path.is_absolute() and not path.exists() and self.root:
            path = Path(self.root) / path
        return path

    def _decode(self, value: Any, row: int) -> tuple[np.ndarray, int]:
        try:
            return read_wav(self._path(value, row))
        except DataError as exc:
            raise DataError(f"column {self.name!r} row {row + 1}: {exc}") from None

    def _waveform(self, value: Any, row: int) -> np.ndarray:
        samples, rate = self._decode(value, row)
        samples = resample(samples, rate, self.sample_rate_)  # type: ignore[arg-type]
        if self.gain == "peak":  # recording level differs ~13x between FSDD speakers; the padding floor does not
            samples = samples / max(float(np.abs(samples).max(initial=0.0)), 1e-8)
        return samples

    def fit(self, series: pd.Series) -> AudioEncoder:
        if len(series) == 0:
            raise DataError(f"column {self.name!r}: no audio rows to fit")
        if self.sample_rate is None:
            _, first_rate = self._decode(series.iloc[0], 0)
        self.sample_rate_ = int(self.sample_rate or first_rate)
        waves = [self._waveform(v, i) for i, v in enumerate(series)]
        if self.duration:
            self.samples_ = round(self.duration * self.sample_rate_)
        else:
            self.samples_ = int(np.percentile([len(w) for w in waves], 95))
        features = self._features(waves)  # N × bands × frames
        if self.normalize == "utterance":
            features = self._remove_utterance_mean(features, waves)
        self.mean_ = features.mean(axis=(0, 2)).tolist()
        self.std_ = [s or 1.0 for s in features.std(axis=(0, 2)).tolist()]
        return self

    def _features(self, waves: list[np.ndarray]) -> np.ndarray:
        length = int(self.samples_)  # type: ignore[arg-type]
        fixed = np.zeros((len(waves), length), dtype=np.float32)
        for row, samples in enumerate(waves):
            fixed[row, : min(length, len(samples))] = samples[:length]
        out = np.stack([log_mel(s, self.sample_rate_, self.n_mels, self._window, self._hop) for s in fixed])  # type: ignore[arg-type]
        if self.representation == "mfcc":
            out = np.einsum("km,nmt->nkt", dct_matrix(self.n_mfcc, self.n_mels), out)
        return out.astype(np.float32)

    def _remove_utterance_mean(self, features: np.ndarray, waves: list[np.ndarray]) -> np.ndarray:
        """Subtract each clip's band mean over its own frames; the padding frames become that mean (0 after).

        Averaging over the padding too made the offset depend on clip length and recording level."""
        out = np.zeros_like(features)
        for row, samples in enumerate(waves):
            frames = min(features.shape[2], 1 + min(len(samples), int(self.samples_)) // self._hop)  # type: ignore[arg-type]
            own = features[row, :, :frames]
            out[row, :, :frames] = own - own.mean(axis=1, keepdims=True)
        return out

    def transform(self, series: pd.Series) -> np.ndarray:
        self._check_fitted("mean_")
        waves = [self._waveform(v, i) for i, v in enumerate(series)]
        features = self._features(waves)
        if self.normalize == "utterance":
            features = self._remove_utterance_mean(features, waves)
        mean = np.asarray(self.mean_, dtype=np.float32)[None, :, None]
        std = np.asarray(self.std_, dtype=np.float32)[None, :, None]
        return ((features - mean) / std)[:, None]

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "sample_rate": self.sample_rate,
            "duration": self.duration,
            "representation": self.representation,
            "n_mels": self.n_mels,
            "n_mfcc": self.n_mfcc,
            "window_ms": self.window_ms,
            "hop_ms": self.hop_ms,
            "normalize": self.normalize,
            "augment": self.augment,
            "gain": self.gain,
            "sample_rate_": self.sample_rate_,
            "samples_": self.samples_,
            "mean_": self.mean_,
            "std_": self.std_,
        }


def looks_like_audio_paths(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(20)
    return len(sample) > 0 and all(Path(v).suffix.lower() in AUDIO_SUFFIXES for v in sample)


# ----------------------------------------------------------------------------- augmentation
def audio_augmenter(
    shift: float = 0.0,
    noise: float = 0.0,
    warp: float = 0.0,
    stretch: float = 0.0,
    freq_masks: int = 0,
    freq_mask_width: int = 4,
    time_masks: int = 0,
    time_mask_width: int = 8,
) -> Callable[[Any], Any] | None:
    """A batch transform on N×1×bands×frames spectrograms, or None when nothing is asked for.

    Works on normalized features, so 0 is the training mean: masks set bands/frames to it.
    """
    if not (shift or noise or warp or stretch or freq_masks or time_masks):
        return None
    import torch
    import torch.nn.functional as F

    def mask(n: int, size: int, count: int, width: int, device: torch.device) -> torch.Tensor:
        """N×size boolean, True inside any of `count` random spans of up to `width`."""
        positions = torch.arange(size, device=device)[None, None]
        widths = torch.randint(0, width + 1, (n, count, 1), device=device)
        starts = (torch.rand(n, count, 1, device=device) * (size - widths + 1).clamp(min=1)).long()
        return ((positions >= starts) & (positions < starts + widths)).any(dim=1)

    def stretched(batch: torch.Tensor, amount: float, bands_axis: bool) -> torch.Tensor:
        """Each clip stretched along one axis by its own random factor in [1 - amount, 1 + amount]."""
        factor = 1.0 + (torch.rand(len(batch), device=batch.device) * 2 - 1) * amount
        zeros, ones = torch.zeros_like(factor), torch.ones_like(factor)
        if bands_axis:  # affine_grid rows: x (frames), then y (bands)
            rows = [torch.stack([ones, zeros, zeros], 1), torch.stack([zeros, factor, factor - 1], 1)]
        else:
            rows = [torch.stack([factor, zeros, factor - 1], 1), torch.stack([zeros, ones, zeros], 1)]
        theta = torch.stack(rows, 1)
        grid = F.affine_grid(theta.to(batch.dtype), list(batch.shape), align_corners=True)
        return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def augment(batch: torch.Tensor) -> torch.Tensor:
        n, _, bands, frames = batch.shape
        device = batch.device
        if shift:
            limit = max(1, int(shift * frames))
            offsets = torch.randint(-limit, limit + 1, (n, 1), device=device)
            index = (torch.arange(frames, device=device)[None] - offsets) % frames
            batch = torch.gather(batch, 3, index[:, None, None, :].expand(n, 1, bands, frames))
        if warp:  # band b of the output reads band b·a of the input (anchored at the lowest band)
            batch = stretched(batch, warp, bands_axis=True)
        if stretch:  # frame t of the output reads frame t·a of the input (anchored at the first frame)
            batch = stretched(batch, stretch, bands_axis=False)
        if noise:
            batch = batch + noise * torch.randn_like(batch)
        if freq_masks:
            hidden = mask(n, bands, freq_masks, freq_mask_width, device)[:, None, :, None]
            batch = batch.masked_fill(hidden, 0.0)
        if time_masks:
            hidden = mask(n, frames, time_masks, time_mask_width, device)[:, None, None, :]
            batch = batch.masked_fill(hidden, 0.0)
        return batch

    return augment
