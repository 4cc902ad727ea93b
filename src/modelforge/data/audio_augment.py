"""Recording shifts on waveforms (numpy): silence or noise around the words, gain, speed, a resampling
round trip, a telephone band, background noise at a chosen signal-to-noise ratio; and, for evaluation
only, an 8-bit recording chain (linear PCM or telephone mu-law).

Two users: training (`augment_waveform`, a random mix per clip drawn from a seeded generator; the
audio encoder renders a few such copies of each training clip once, and each batch picks one per row)
and the robustness evaluation (`PERTURBATIONS`: fixed, named shifts that `evaluate --perturb`
reports accuracy under). Every function takes and returns float32 mono samples at the clip's rate;
noise is generated here, no noise files are needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from modelforge.data.audio import resample
from modelforge.errors import ConfigError

TELEPHONE_BAND = (300.0, 3400.0)
MU = 255.0  # G.711 mu-law


def pad(
    samples: np.ndarray, rate: int, before: float, after: float, noise_rms: float = 0.0, seed: int = 0
) -> np.ndarray:
    """`before` / `after` seconds added at the ends: digital silence, or white noise of RMS `noise_rms`."""
    rng = np.random.default_rng(seed)
    head, tail = (rng.normal(0.0, noise_rms, round(rate * s)).astype(np.float32) for s in (before, after))
    return np.concatenate([head, samples, tail]).astype(np.float32)


def gain(samples: np.ndarray, db: float) -> np.ndarray:
    """Louder or quieter by `db` decibels; not clipped (a level change, as a float recording chain keeps it)."""
    return (samples * 10.0 ** (db / 20.0)).astype(np.float32)


def speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """Played `factor` times as fast: shorter by that factor, pitch up by it (a tape at another speed)."""
    return resample(samples, 10_000, round(10_000 / factor))  # rates in a ratio: only 1 / factor matters


def round_trip(samples: np.ndarray, rate: int, via: int) -> np.ndarray:
    """Down to `via` Hz and back: what a lower-rate recording chain leaves (no content above via/2)."""
    return resample(resample(samples, rate, via), via, rate)[: len(samples)]


def band_pass(samples: np.ndarray, rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Only the frequencies in [low_hz, high_hz] (an ideal filter in the frequency domain)."""
    spectrum = np.fft.rfft(samples)
    hz = np.fft.rfftfreq(len(samples), 1.0 / rate)
    spectrum[(hz < low_hz) | (hz > high_hz)] = 0.0
    return np.fft.irfft(spectrum, n=len(samples)).astype(np.float32)


def eight_bit(samples: np.ndarray, peak: float, mu_law: bool = False) -> np.ndarray:
    """The clip as an 8-bit recording whose loudest sample reached `peak` of full scale: rounded to linear
    PCM's 256 levels (quiet sounds fall to a few levels or to zero), or to mu-law's, which keep quiet
    sounds finer (telephony); returned at the clip's own level."""
    loudest = float(np.abs(samples).max(initial=0.0))
    if loudest == 0.0:
        return samples.astype(np.float32)
    scaled = samples.astype(np.float64) * (peak / loudest)
    if mu_law:
        code = np.round(np.sign(scaled) * np.log1p(MU * np.abs(scaled)) / np.log1p(MU) * 127) / 127
        scaled = np.sign(code) * np.expm1(np.abs(code) * np.log1p(MU)) / MU
    else:
        scaled = np.round(scaled * 128) / 128
    return (scaled * (loudest / peak)).astype(np.float32)


def add_noise(samples: np.ndarray, snr_db: float, seed: int = 0, color: str = "white") -> np.ndarray:
    """Background noise mixed in at `snr_db` below the clip's RMS; `pink` falls 3 dB an octave."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, len(samples))
    if color == "pink":
        spectrum = np.fft.rfft(noise)
        spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=len(samples))
    signal_rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    noise_rms = float(np.sqrt(np.mean(noise**2))) or 1.0
    return (samples + noise * (signal_rms * 10.0 ** (-snr_db / 20.0) / noise_rms)).astype(np.float32)


# ----------------------------------------------------------------------------- training
@dataclass(frozen=True)
class WaveAugment:
    """How far each recording shift may go in training (0 / None: that shift is off)."""

    pad: float = 0.0  # seconds of silence or quiet noise, at most, at each end
    gain_db: float = 0.0  # uniform in ±gain_db
    speed: float = 0.0  # factor uniform in 1 ± speed
    resample: float = 0.0  # probability of a round trip through a lower rate
    band: float = 0.0  # probability of a telephone band (300–3,400 Hz) or a low-pass
    snr_db: float | None = None  # background noise at snr_db to snr_db + 20 dB, for half the copies

    @property
    def active(self) -> bool:
        return bool(self.pad or self.gain_db or self.speed or self.resample or self.band or self.snr_db is not None)


def augment_waveform(samples: np.ndarray, rate: int, options: WaveAugment, rng: np.random.Generator) -> np.ndarray:
    """One random recording of the clip under the shifts `options` allows, drawn from `rng`."""
    out = samples
    if options.speed:
        out = speed(out, float(rng.uniform(1 - options.speed, 1 + options.speed)))
    if options.resample and rng.random() < options.resample:
        out = round_trip(out, rate, int(rate * rng.uniform(0.4, 0.8)))
    if options.band and rng.random() < options.band:
        low, high = TELEPHONE_BAND if rng.random() < 0.5 else (0.0, rate * rng.uniform(0.25, 0.4))
        out = band_pass(out, rate, low, min(high, rate / 2))
    if options.snr_db is not None and rng.random() < 0.5:
        out = add_noise(out, float(rng.uniform(options.snr_db, options.snr_db + 20)), int(rng.integers(2**31)))
    if options.pad:
        level = float(np.sqrt(np.mean(out.astype(np.float64) ** 2))) * 10.0 ** (-rng.uniform(30, 60) / 20)
        noise_rms = level if rng.random() < 0.5 else 0.0
        before, after = rng.uniform(0, options.pad, 2)
        out = pad(out, rate, float(before), float(after), noise_rms, int(rng.integers(2**31)))
    if options.gain_db:
        out = gain(out, float(rng.uniform(-options.gain_db, options.gain_db)))
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- evaluation
Perturbation = Callable[[np.ndarray, int], np.ndarray]

PERTURBATIONS: dict[str, dict[str, Perturbation]] = {
    "silence": {"silence_0.3s": lambda x, r: pad(x, r, 0.3, 0.3)},
    "gain": {"gain_+10dB": lambda x, r: gain(x, 10.0), "gain_-10dB": lambda x, r: gain(x, -10.0)},
    "speed": {"speed_0.9": lambda x, r: speed(x, 0.9), "speed_1.1": lambda x, r: speed(x, 1.1)},
    "noise": {"noise_20dB": lambda x, r: add_noise(x, 20.0), "noise_10dB": lambda x, r: add_noise(x, 10.0)},
    "telephone": {"telephone": lambda x, r: band_pass(x, r, *TELEPHONE_BAND)},
    "resample": {"resample_0.5": lambda x, r: round_trip(x, r, r // 2)},
    "bits": {"8bit_-12dBFS": lambda x, r: eight_bit(x, 0.25), "mulaw_-12dBFS": lambda x, r: eight_bit(x, 0.25, True)},
}


def perturbations_named(names: str) -> dict[str, Perturbation]:
    """`silence,gain` → each named shift's variants by their report key; ConfigError for an unknown name."""
    chosen: dict[str, Perturbation] = {}
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name not in PERTURBATIONS:
            raise ConfigError(f"--perturb: unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
        chosen.update(PERTURBATIONS[name])
    if not chosen:
        raise ConfigError(f"--perturb: name at least one of {', '.join(PERTURBATIONS)}")
    return chosen
