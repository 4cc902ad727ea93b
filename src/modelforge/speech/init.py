"""`modelforge init TABLE --target text`: a speech-recognition config that trains without edits.

TABLE lists WAV paths (relative to it) and transcripts. Everything is chosen from what the data looks like:

- split: `valid`/`dev` and `test` tables beside it (val.csv beside train.csv) become data.valid /
  data.test, a column naming each clip's split (train / valid / test) data.split.column, and 10 % of the
  clips go to each part neither gives;
- the sample rate: the clips' most common one (others are resampled to it); speech.max_seconds: the
  longest clip rounded up, at least 20 s;
- model: ctc_rnn with 2-D convolutions, two at each stride (filters that slide along the mel bands:
  voices differ there), 128 wide, 2 layers under 5,000 clips; 256 wide, 3 layers above;
- epochs: about 30,000 clip presentations (15 to 150 epochs), batch 16 under 2,000 clips (else 32),
  AdamW with a cosine schedule after a warm-up of a twentieth of the steps, gradients clipped at 5;
- decoding: greedy, or for a closed vocabulary (at most 1,000 distinct words, each heard 20 times on
  average: digits, commands) a beam of 4 kept to the training transcripts' words (speech.lexicon);
- augmentation: two more recordings of each training clip (speed ±10 %, gain ±10 dB, silence, noise at
  10–30 dB SNR, a lower-rate round trip or a telephone band), a band warp of ±10 % and SpecAugment masks;
- decoding at five band warps across the training's ±10 % (speech.warps), their frame probabilities averaged.
"""

from __future__ import annotations

import math
import os
import wave
from pathlib import Path
from typing import Any

from modelforge.data.readers import read_data
from modelforge.data.split import named_split_column
from modelforge.speech.data import DEFAULT_TARGET, most_common_rate, read_clips

PRESENTATIONS = 30_000
CLOSED_VOCABULARY = (1000, 20)  # at most this many distinct words, each heard this many times on average
# each training clip rendered twice more (speed, gain, silence, noise, band), then band warp and masks per batch:
# recordings of speakers and rooms the training set lacks
AUGMENT = {
    "copies": 2,
    "speed": 0.1,
    "gain_db": 10.0,
    "pad": 0.3,
    "snr_db": 10.0,
    "resample": 0.2,
    "band": 0.2,
    "warp": 0.1,
    "freq_masks": 2,
    "freq_mask_width": 6,
    "time_masks": 2,
    "time_mask_width": 8,
}
# decoding hears each clip at five band warps spanning the training's (mean of the frame probabilities):
# a new voice's vocal tract between the training speakers' and the warps' (bench/speech.py loso, docs)
DECODE_WARPS = [round(1 + AUGMENT["warp"] * step / 2, 3) for step in (-2, -1, 0, 1, 2)]
HELD_OUT = {"valid": ("val", "valid", "dev", "validation"), "test": ("test",)}


def held_out_tables(data: Path) -> dict[str, Path]:
    """`val.csv` / `test.csv` beside `train.csv` (the name's `train` replaced)."""
    found: dict[str, Path] = {}
    if "train" not in data.name:
        return found
    for key, stems in HELD_OUT.items():
        for stem in stems:
            candidate = data.with_name(data.name.replace("train", stem))
            if candidate.is_file() and candidate != data:
                found[key] = candidate
                break
    return found


def longest_seconds(files: list[Path]) -> float:
    longest = 0.0
    for file in files:
        try:
            with wave.open(str(file), "rb") as handle:
                longest = max(longest, handle.getnframes() / handle.getframerate())
        except (wave.Error, EOFError, OSError):
            continue  # float WAVs and broken files: training reads (and names) them
    return longest


def decoding(texts: list[str]) -> dict[str, Any]:
    """speech.beam and speech.lexicon: a lexicon-bound beam for a closed vocabulary, else greedy."""
    words = [word for text in texts for word in text.lower().split()]
    distinct, repeats = CLOSED_VOCABULARY
    closed = 0 < len(set(words)) <= distinct and len(words) >= repeats * len(set(words))
    return {"beam": 4, "lexicon": True} if closed else {"beam": 1}


def speech_config(data: Path, out: Path | None, target: str | None = None) -> dict[str, Any]:
    """A speech-recognition config for a table of WAV paths and transcripts (--target, default `text`)."""
    base = out.resolve().parent if out else Path.cwd()

    def relative(path: Path) -> str:
        return os.path.relpath(path.resolve(), base)

    column, marked = named_split_column(read_data(data), [target or DEFAULT_TARGET])
    clips = read_clips(data, target, None, split_column=column)
    held_out = held_out_tables(data)
    n = len(clips)
    given = set(held_out) | marked
    split = {"valid": 0.0 if "valid" in given else 0.1, "test": 0.0 if "test" in given else 0.1}
    pool = n if clips.parts is None else clips.parts.count("train")
    train_clips = pool * (1 - split["valid"] - split["test"])
    batch_size = 16 if n < 2000 else 32
    epochs = int(min(150, max(15, math.ceil(PRESENTATIONS / max(train_clips, 1)))))
    steps = epochs * math.ceil(train_clips / batch_size)
    data_section: dict[str, Any] = {"train": relative(data), "target": target or DEFAULT_TARGET}
    data_section.update({key: relative(path) for key, path in held_out.items()})
    if column is not None:
        data_section["split"] = {"column": column, **split}
    elif split != {"valid": 0.0, "test": 0.0}:
        data_section["split"] = split
    small = n < 5000
    return {
        "task": "speech-recognition",
        "seed": 0,
        "data": data_section,
        "model": {
            "type": "ctc_rnn",
            "conv": "2d",
            "convs_per_stage": 2,
            "width": 128 if small else 256,
            "layers": 2 if small else 3,
            "dropout": 0.1,
        },
        "train": {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": 2.0e-3,
            "min_lr": 2.0e-5,
            "optimizer": "adamw",
            "weight_decay": 1.0e-4,
            "schedule": "cosine",
            "warmup_steps": int(min(1000, max(20, steps // 20))),
            "grad_clip": 5.0,
        },
        "speech": {
            "sample_rate": most_common_rate(clips),
            "max_seconds": float(max(20, math.ceil(longest_seconds(clips.files)))),
            **decoding(clips.texts or []),
            "augment": dict(AUGMENT),
            "warps": list(DECODE_WARPS),
        },
    }
