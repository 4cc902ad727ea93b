"""Synthetic voices for the spoken-digit benches: each digit word spoken by Debian's espeak-ng.

Issue 23 allows "more voices from Debian's espeak-ng for a small vocabulary" beside the FSDD recordings.
A voice is an espeak-ng English accent with a voice variant (`en-gb-scotland+f3`), and each word it
speaks gets its own pitch (25–75) and rate (130–190 words a minute), drawn once from a fixed seed, so the
same voices speak the same way on every machine with the same espeak-ng. Needs `apt-get install
espeak-ng`; the benches say so in one line when it is missing.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import wave
from dataclasses import dataclass
from math import gcd

import numpy as np
from scipy.signal import resample_poly

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ACCENTS = [
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
]  # fmt: skip
VARIANTS = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "adam", "anika", "belinda", "david", "linda",
]  # fmt: skip
MAX_VOICES = len(ACCENTS) * len(VARIANTS)


@dataclass(frozen=True)
class Voice:
    name: str  # espeak-ng's -v argument: accent+variant
    pitch: tuple[int, ...]  # per digit word
    rate: tuple[int, ...]  # per digit word, words a minute


def voices(count: int) -> list[Voice]:
    """The first `count` of the 160 voices (accents taking turns, so a few voices already span them)."""
    if not 0 < count <= MAX_VOICES:
        raise SystemExit(f"--voices: 1 to {MAX_VOICES}, not {count}")
    if shutil.which("espeak-ng") is None:
        raise SystemExit("--voices needs espeak-ng on the PATH: apt-get install espeak-ng")
    draws = random.Random(0)
    every = {}
    for accent in ACCENTS:
        for variant in VARIANTS:
            pitch_rate = [(draws.randint(25, 75), draws.randint(130, 190)) for _ in WORDS]
            every[(accent, variant)] = Voice(
                f"{accent}+{variant}", tuple(p for p, _ in pitch_rate), tuple(r for _, r in pitch_rate)
            )
    order = [(ACCENTS[i % len(ACCENTS)], VARIANTS[i // len(ACCENTS)]) for i in range(MAX_VOICES)]
    return [every[key] for key in order[:count]]


def speak(voice: Voice, digit: int, rate: int) -> np.ndarray:
    """`voice` saying digit `digit`'s word: mono float32 samples in [-1, 1] at `rate` Hz."""
    command = ["espeak-ng", "-v", voice.name, "-p", str(voice.pitch[digit]), "-s", str(voice.rate[digit])]
    spoken = subprocess.run([*command, "--stdout", WORDS[digit]], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(spoken)) as handle:
        source = handle.getframerate()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").astype(np.float32) / 32768
    common = gcd(rate, source)
    return resample_poly(samples, rate // common, source // common).astype(np.float32)


def write_pcm(path: str, samples: np.ndarray, rate: int) -> None:
    with wave.open(path, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())
