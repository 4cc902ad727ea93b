"""`modelforge init FILE.txt --task language-modeling`: the contract GPT config for a text file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelforge.text.data import read_corpus


def language_model_config(data: Path, out: Path | None) -> dict[str, Any]:
    """A char-level GPT config (4 layers, 4 heads, 128 wide, context 64) for `data`, trainable as is.

    The file is read first, so an empty or binary file fails here rather than at training.
    """
    read_corpus(str(data))
    base = out.resolve().parent if out else Path.cwd()
    return {
        "task": "language-modeling",
        "seed": 0,
        "data": {"train": os.path.relpath(data.resolve(), base), "tokenizer": "char", "valid_fraction": 0.1},
        "model": {"type": "gpt", "layers": 4, "heads": 4, "width": 128, "context": 64, "dropout": 0.0},
        "train": {
            "batch_size": 12,
            "max_steps": 2000,
            "lr": 1.0e-3,
            "min_lr": 1.0e-4,
            "warmup_steps": 100,
            "weight_decay": 0.1,
            "betas": [0.9, 0.99],
            "grad_clip": 1.0,
            "eval_every": 500,
            "eval_batches": 20,
        },
    }
