"""Tiny synthetic speech: each letter of "abcde" is a tone of its own pitch (~80 ms), utterances of 2–5
letters with short random gaps and light noise, written as 8 kHz WAVs with a CSV of paths and transcripts.
A model that hears which tone comes when can transcribe it; chance is far from it (5 letters)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pandas as pd

RATE = 8000
PITCHES = {"a": 400.0, "b": 650.0, "c": 1000.0, "d": 1500.0, "e": 2200.0}


def render(text: str, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    pieces = [np.zeros(int(rate * rng.uniform(0.02, 0.08)))]
    for letter in text:
        length = int(rate * rng.uniform(0.07, 0.09))
        t = np.arange(length) / rate
        envelope = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / (0.01 * rate))
        pieces.append(0.5 * envelope * np.sin(2 * np.pi * PITCHES[letter] * rng.uniform(0.97, 1.03) * t))
        pieces.append(np.zeros(int(rate * rng.uniform(0.03, 0.06))))
    samples = np.concatenate(pieces)
    return (samples * rng.uniform(0.3, 1.0) + rng.normal(0.0, 0.01, len(samples))).astype(np.float32)


def write_pcm(path: Path, samples: np.ndarray, rate: int = RATE, channels: int = 1) -> Path:
    """16-bit PCM WAV; with `channels` 2 the clip is written to both channels."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1).reshape(-1)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return path


def random_text(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(PITCHES), size=int(rng.integers(2, 6))))


def write_tones(folder: Path, n: int = 200, seed: int = 0, name: str = "clips.csv") -> Path:
    """`n` clips under folder/wav and folder/NAME listing `audio` (relative paths) and `text`."""
    rng = np.random.default_rng(seed)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        text = random_text(rng)
        write_pcm(folder / "wav" / f"{seed}-{i}.wav", render(text, rng))
        rows.append({"audio": f"wav/{seed}-{i}.wav", "text": text})
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def tiny_config(data: str, **train: object) -> dict:
    return {
        "task": "speech-recognition",
        "seed": 0,
        "data": {"train": data, "target": "text", "split": {"valid": 0.1, "test": 0.1}},
        "model": {"type": "ctc_rnn", "width": 48, "layers": 1, "dropout": 0.0},
        "train": {"epochs": 12, "batch_size": 16, "lr": 3e-3, "warmup_steps": 10, "threads": 1, **train},
        "speech": {"n_mels": 24},
    }
