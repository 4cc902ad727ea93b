"""Audio features: WAV files → log-mel spectrograms or MFCCs, normalized per band.

Decoding uses the standard library's `wave` (PCM 8/16/24/32-bit, any channel count, mixed
to mono); resampling and the short-time Fourier transform are numpy, so torchaudio is not
needed. `AudioEncoder` follows the scikit-learn contract of the other encoders: parameters in
`__init__`, `fit` learns the clip length and per-band statistics on train, JSON state.
`audio_augmenter` is the train-time batch transform (time shift, band warp, noise, SpecAugment masks).

The front end before the spectrogram (`audio_vad.py`): remove a DC offset, trim leading and trailing
silence, scale to one loudness; then `length: stretch` resamples each clip's spectrogram to the same
number of frames, so silence, level and speaking rate do not move the features. Recording shifts on the
waveform (`audio_augment.py`) are rendered once per training clip (`AudioEncoder.augmented`) and picked per batch.
"""

from __future__ import annotations

import struct
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelforge.data.audio_vad import normalize_loudness, remove_dc, trim_silence
from modelforge.errors import DataError, NotFittedError
from modelforge.files import path_from

AUDIO_SUFFIXES = {".wav", ".wave"}
LOG_FLOOR = 1e-6
MIN_BAND_STD = 1.0  # log power: 4.3 dB
TRIM_MARGIN_MS = 25.0  # kept either side of the voiced span: the soft onset of a consonant
SPECTROGRAM_AUGMENT = (
    "shift",
    "noise",
    "warp",
    "stretch",
    "freq_masks",
    "freq_mask_width",
    "time_masks",
    "time_mask_width",
)


# ----------------------------------------------------------------------------- decoding
def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples (PCM in [-1, 1]; 32-bit float as stored) and the sample rate; DataError names
    the file if it does not decode."""
    try:
        with wave.open(str(path), "rb") as handle:
            rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
            samples = pcm_samples(handle.readframes(handle.getnframes()), width, path)
    except FileNotFoundError:
        raise DataError(f"{path}: audio file not found") from None
    except (wave.Error, EOFError, OSError) as exc:
        if "unknown format: 3" not in str(exc):
            raise DataError(f"{path}: cannot decode audio as PCM WAV ({exc})") from None
        raw, rate, channels = float_wav_frames(path)  # `wave` reads PCM only
        samples = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels).mean(axis=1)
    if samples.size == 0:
        raise DataError(f"{path}: the audio file has no samples")
    return samples, rate


def pcm_samples(raw: bytes, width: int, path: Path) -> np.ndarray:
    """Interleaved PCM bytes of `width` bytes a sample as float32 in [-1, 1]."""
    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if width == 3:
        bytes3 = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = bytes3[:, 0] | (bytes3[:, 1] << 8) | (bytes3[:, 2] << 16)
        return (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)).astype(np.float32)
    if width == 4:
        return np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    raise DataError(f"{path}: unsupported sample width {width} bytes")


def float_wav_frames(path: Path) -> tuple[bytes, int, int]:
    """The sample bytes, rate and channels of a 32-bit IEEE-float WAV (format 3), read chunk by chunk."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DataError(f"{path}: cannot decode audio as WAV (no RIFF/WAVE header)")
    position, fmt, raw = 12, None, None
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        body = data[position + 8 : position + 8 + size]
        if chunk == b"fmt " and len(body) >= 16:
            fmt = struct.unpack("<HHIIHH", body[:16])  # format, channels, rate, bytes/s, block, bits
        elif chunk == b"data":
            raw = body
        position += 8 + size + (size & 1)
    if fmt is None or raw is None or fmt[0] != 3 or fmt[5] != 32:
        raise DataError(f"{path}: cannot decode audio: a float WAV needs 32-bit samples, a fmt and a data chunk")
    return raw[: len(raw) - len(raw) % 4], fmt[2], fmt[1]


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Mono 32-bit IEEE-float WAV: `read_wav` gives the samples back exactly, levels above 1 included
    (a louder recording, not a clipped one)."""
    raw = samples.astype("<f4").tobytes()
    header = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(header)) + header + b"data" + struct.pack("<I", len(raw)) + raw
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    return path


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


def log_mel(
    samples: np.ndarray, sample_rate: int, n_mels: int, window: int, hop: int, floor_db: float | None = None
) -> np.ndarray:
    """n_mels × frames log power, frames = 1 + len // hop (centered windows, zero padded).

    `floor_db`: power `floor_db` below the clip's loudest band and frame is added before the log, so
    what lies under it (a recording's noise floor, or digital silence) reads the same in every clip."""
    n_fft = 1 << max(0, (window - 1).bit_length())
    padded = np.pad(samples, (n_fft // 2, n_fft // 2))
    n_frames = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None] + hop * np.arange(n_frames)[:, None]
    taper = np.zeros(n_fft, dtype=np.float32)
    start = (n_fft - window) // 2
    taper[start : start + window] = np.hanning(window)
    power = np.abs(np.fft.rfft(padded[index] * taper, axis=1)) ** 2
    mel = mel_filterbank(n_mels, n_fft, sample_rate) @ power.T
    floor = LOG_FLOOR if floor_db is None else max(LOG_FLOOR, float(mel.max(initial=0.0)) * 10.0 ** (-floor_db / 10))
    return np.log(mel + floor).astype(np.float32)


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
        trim_db: float | None = None,
        length: str = "pad",
        frames: int | None = None,
        max_duration: float | None = None,
        floor_db: float | None = None,
        remove_dc: bool = False,
    ) -> None:
        # the defaults here are what runs saved before the front end did; the config's defaults turn it on
        self.name, self.root, self.sample_rate, self.duration = name, root, sample_rate, duration
        self.representation, self.n_mels, self.n_mfcc = representation, n_mels, n_mfcc
        self.window_ms, self.hop_ms, self.normalize = window_ms, hop_ms, normalize
        self.augment = augment or {}
        self.gain, self.trim_db, self.max_duration = gain, trim_db, max_duration
        self.length, self.frames, self.floor_db, self.remove_dc = length, frames, floor_db, remove_dc
        self.sample_rate_: int | None = None
        self.samples_: int | None = None
        self.frames_: int | None = None
        self.mean_: list[float] | None = None
        self.std_: list[float] | None = None

    @property
    def bands(self) -> int:
        return self.n_mfcc if self.representation == "mfcc" else self.n_mels

    @property
    def n_frames(self) -> int:
        """Frames per clip of the features `transform` returns."""
        if self.length == "stretch":
            self._check_fitted("frames_")
            return int(self.frames_)  # type: ignore[arg-type]
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
        return path_from(value, self.root)

    def decode(self, value: Any, row: int) -> tuple[np.ndarray, int]:
        """The clip in row `row` (from 0): samples and their rate; DataError naming the column, row and file."""
        try:
            return read_wav(self._path(value, row))
        except DataError as exc:
            raise DataError(f"column {self.name!r} row {row + 1}: {exc}") from None

    def _recording(self, value: Any, row: int) -> np.ndarray:
        """The decoded clip at the encoder's rate (its DC offset removed when asked); DataError when it
        lasts longer than `max_duration`."""
        samples, rate = self.decode(value, row)
        if self.max_duration and len(samples) > self.max_duration * rate:
            raise DataError(
                f"column {self.name!r} row {row + 1}: {self._path(value, row)} lasts {len(samples) / rate:.1f} s, "
                f"longer than max_duration {self.max_duration:g} s; cut the clip or raise features[].max_duration"
            )
        samples = resample(samples, rate, self.sample_rate_)  # type: ignore[arg-type]
        return remove_dc(samples) if self.remove_dc else samples

    def _front_end(self, samples: np.ndarray) -> np.ndarray:
        """Silence trimmed and loudness set, as the config asks."""
        if self.trim_db:
            samples = trim_silence(samples, self.sample_rate_, self.trim_db, TRIM_MARGIN_MS)  # type: ignore[arg-type]
        if self.gain == "rms":
            samples = normalize_loudness(samples)
        elif self.gain == "peak":  # recording level differs ~13x between FSDD speakers; the padding floor does not
            samples = samples / max(float(np.abs(samples).max(initial=0.0)), 1e-8)
        return samples

    def _waveform(self, value: Any, row: int) -> np.ndarray:
        return self._front_end(self._recording(value, row))

    def fit(self, series: pd.Series) -> AudioEncoder:
        if len(series) == 0:
            raise DataError(f"column {self.name!r}: no audio rows to fit")
        if self.sample_rate is None:
            _, first_rate = self.decode(series.iloc[0], 0)
        self.sample_rate_ = int(self.sample_rate or first_rate)
        waves = [self._waveform(v, i) for i, v in enumerate(series)]
        if self.length == "stretch":
            self.frames_ = int(self.frames or np.percentile([1 + len(w) // self._hop for w in waves], 95))
        elif self.duration:
            self.samples_ = round(self.duration * self.sample_rate_)
        else:
            self.samples_ = int(np.percentile([len(w) for w in waves], 95))
        features = self._features(waves)  # N × bands × frames
        if self.normalize == "utterance":
            features = self._remove_utterance_mean(features, waves)
        self.mean_ = features.mean(axis=(0, 2)).tolist()
        spread = features.std(axis=(0, 2))
        if self.representation == "logmel":  # a band that barely moves across the clips (one at the floor in all
            spread = np.maximum(spread, MIN_BAND_STD)  # of them) would read a few dB of noise as many deviations
        self.std_ = [s or 1.0 for s in spread.tolist()]
        return self

    def _features(self, waves: list[np.ndarray]) -> np.ndarray:
        if self.length == "stretch":
            return np.stack([self._stretched(w) for w in waves]).astype(np.float32)
        length = int(self.samples_)  # type: ignore[arg-type]
        fixed = np.zeros((len(waves), length), dtype=np.float32)
        for row, samples in enumerate(waves):
            fixed[row, : min(length, len(samples))] = samples[:length]
        rate = int(self.sample_rate_)  # type: ignore[arg-type]
        out = np.stack([log_mel(s, rate, self.n_mels, self._window, self._hop, self.floor_db) for s in fixed])
        if self.representation == "mfcc":
            out = np.einsum("km,nmt->nkt", dct_matrix(self.n_mfcc, self.n_mels), out)
        return out.astype(np.float32)

    def _stretched(self, samples: np.ndarray) -> np.ndarray:
        """The clip's own spectrogram, linearly resampled along time to `frames_` frames."""
        own = log_mel(samples, self.sample_rate_, self.n_mels, self._window, self._hop, self.floor_db)  # type: ignore[arg-type]
        if self.representation == "mfcc":
            own = dct_matrix(self.n_mfcc, self.n_mels) @ own
        return stretch_frames(own, int(self.frames_))  # type: ignore[arg-type]

    def _remove_utterance_mean(self, features: np.ndarray, waves: list[np.ndarray]) -> np.ndarray:
        """Subtract each clip's band mean over its own frames; the padding frames become that mean (0 after).

        Averaging over the padding too made the offset depend on clip length and recording level."""
        if self.length == "stretch":  # no padding frames: every frame is the clip's own
            return features - features.mean(axis=2, keepdims=True)
        out = np.zeros_like(features)
        for row, samples in enumerate(waves):
            frames = min(features.shape[2], 1 + min(len(samples), int(self.samples_)) // self._hop)  # type: ignore[arg-type]
            own = features[row, :, :frames]
            out[row, :, :frames] = own - own.mean(axis=1, keepdims=True)
        return out

    def transform(self, series: pd.Series) -> np.ndarray:
        self._check_fitted("mean_")
        return self._normalized([self._waveform(v, i) for i, v in enumerate(series)])

    def _normalized(self, waves: list[np.ndarray]) -> np.ndarray:
        """N×1×bands×frames features of front-end waveforms, normalized with the fitted statistics."""
        features = self._features(waves)
        if self.normalize == "utterance":
            features = self._remove_utterance_mean(features, waves)
        mean = np.asarray(self.mean_, dtype=np.float32)[None, :, None]
        std = np.asarray(self.std_, dtype=np.float32)[None, :, None]
        return ((features - mean) / std)[:, None]

    @property
    def spectrogram_augment(self) -> dict[str, Any]:
        """The `augment` keys `audio_augmenter` reads (masks, shift, warp, ...)."""
        return {k: v for k, v in self.augment.items() if k in SPECTROGRAM_AUGMENT}

    def augmented(self, series: pd.Series, seed: int) -> np.ndarray | None:
        """N×copies×1×bands×frames: each clip recorded `augment.copies` more ways (audio_augment.py), or None.

        Row i's copy k is drawn from a generator seeded with (seed, i, k): the same every time the
        run is trained or resumed on the same rows."""
        from modelforge.data.audio_augment import WaveAugment, augment_waveform

        self._check_fitted("mean_")
        copies = int(self.augment.get("copies", 0))
        options = WaveAugment(**{k: self.augment[k] for k in WaveAugment.__dataclass_fields__ if k in self.augment})
        if not copies or not options.active:
            return None
        rate = int(self.sample_rate_)  # type: ignore[arg-type]
        waves = []
        for row, value in enumerate(series):
            recording = self._recording(value, row)
            for copy in range(copies):
                rng = np.random.default_rng([seed, row, copy])
                waves.append(self._front_end(augment_waveform(recording, rate, options, rng)))
        features = self._normalized(waves)
        return features.reshape(len(series), copies, *features.shape[1:])

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
            "trim_db": self.trim_db,
            "length": self.length,
            "frames": self.frames,
            "max_duration": self.max_duration,
            "floor_db": self.floor_db,
            "remove_dc": self.remove_dc,
            "sample_rate_": self.sample_rate_,
            "samples_": self.samples_,
            "frames_": self.frames_,
            "mean_": self.mean_,
            "std_": self.std_,
        }


def stretch_frames(features: np.ndarray, frames: int) -> np.ndarray:
    """bands × T → bands × `frames` by linear interpolation along time (first and last frames kept)."""
    return read_at(features, np.linspace(0.0, features.shape[1] - 1, frames), axis=1)


def read_at(features: np.ndarray, position: np.ndarray, axis: int) -> np.ndarray:
    """`features` read at fractional `position`s (within 0 … length − 1) along `axis`, linearly between
    the two nearest indices."""
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, features.shape[axis] - 1)
    share = np.expand_dims((position - low).astype(np.float32), 1 - axis)
    below, above = np.take(features, low, axis=axis), np.take(features, high, axis=axis)
    return (below * (1 - share) + above * share).astype(np.float32)


def looks_like_audio_paths(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(20)
    return len(sample) > 0 and all(Path(v).suffix.lower() in AUDIO_SUFFIXES for v in sample)


# ----------------------------------------------------------------------------- augmentation
def audio_batch_augmenter(spectrogram_options: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The train-time transform of a batch: each row's clip or one of its rendered recording shifts
    (`audio_variants`, when the training set has them), then the spectrogram augmentations."""
    augment_audio = audio_augmenter(**spectrogram_options)

    def augment(batch: dict[str, Any]) -> dict[str, Any]:
        batch = dict(batch)
        variants = batch.pop("audio_variants", None)
        audio = pick_recordings(batch["audio"], variants) if variants is not None else batch["audio"]
        return {**batch, "audio": augment_audio(audio) if augment_audio is not None else audio}

    return augment


def pick_recordings(clean: Any, variants: Any) -> Any:
    """Per row, the clip itself or one of its rendered variants (N×1×B×F and N×K×1×B×F tensors), uniformly."""
    import torch

    choice = torch.randint(0, variants.shape[1] + 1, (len(clean),), device=clean.device)
    rendered = variants[torch.arange(len(clean), device=clean.device), (choice - 1).clamp(min=0)]
    return torch.where((choice == 0)[:, None, None, None], clean, rendered)


def stretch_axis(batch: Any, factor: Any, bands_axis: bool) -> Any:
    """N×1×bands×frames clips, clip i stretched along one axis by factor[i]: output index k reads input
    index k·factor (anchored at the first band or frame; linear interpolation, the edge repeated)."""
    import torch
    import torch.nn.functional as F

    zeros, ones = torch.zeros_like(factor), torch.ones_like(factor)
    if bands_axis:  # affine_grid rows: x (frames), then y (bands)
        rows = [torch.stack([ones, zeros, zeros], 1), torch.stack([zeros, factor, factor - 1], 1)]
    else:
        rows = [torch.stack([factor, zeros, factor - 1], 1), torch.stack([zeros, ones, zeros], 1)]
    theta = torch.stack(rows, 1)
    grid = F.affine_grid(theta.to(batch.dtype), list(batch.shape), align_corners=True)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_bands(features: np.ndarray, factor: float) -> np.ndarray:
    """bands × frames → the same shape, band b reading band b·factor: the training's band warp
    (`stretch_axis` along the bands) at one chosen factor, for decoding at several vocal-tract lengths."""
    bands = features.shape[0]
    return read_at(features, np.minimum(np.arange(bands) * factor, bands - 1), axis=0)


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

    def mask(n: int, size: int, count: int, width: int, device: torch.device) -> torch.Tensor:
        """N×size boolean, True inside any of `count` random spans of up to `width`."""
        positions = torch.arange(size, device=device)[None, None]
        widths = torch.randint(0, width + 1, (n, count, 1), device=device)
        starts = (torch.rand(n, count, 1, device=device) * (size - widths + 1).clamp(min=1)).long()
        return ((positions >= starts) & (positions < starts + widths)).any(dim=1)

    def stretched(batch: torch.Tensor, amount: float, bands_axis: bool) -> torch.Tensor:
        """Each clip stretched along one axis by its own random factor in [1 - amount, 1 + amount]."""
        factor = 1.0 + (torch.rand(len(batch), device=batch.device) * 2 - 1) * amount
        return stretch_axis(batch, factor, bands_axis)

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
