"""Digits → words, a rule-based "translation" the repo makes ("407" → "four hundred seven"), that a small
encoder-decoder learns to near-perfect in seconds, so evaluate/predict/generate/serve check real output."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """English words of 0 ≤ n < 1000 ("407" → "four hundred seven")."""
    words = []
    if n >= 100:
        words += [ONES[n // 100], "hundred"]
        n %= 100
        if n == 0:
            return " ".join(words)
    if n >= 20:
        words.append(TENS[n // 10])
        if n % 10:
            words.append(ONES[n % 10])
    elif n >= 10:
        words.append(TEENS[n - 10])
    else:
        words.append(ONES[n])
    return " ".join(words)


def number_pairs(count: int = 1000, seed: int = 0) -> pd.DataFrame:
    numbers = np.random.default_rng(seed).permutation(1000)[:count]
    return pd.DataFrame({"digits": [str(n) for n in numbers], "words": [number_words(int(n)) for n in numbers]})


def tiny_config(train: str, **train_options: Any) -> dict[str, Any]:
    return {
        "task": "seq2seq",
        "data": {"train": train, "target": "words", "split": {"valid": 0.1, "test": 0.1}},
        "model": {"width": 64, "heads": 4, "encoder_layers": 2, "decoder_layers": 2, "ffn": 128, "dropout": 0.0},
        "train": {"epochs": 16, "batch_size": 32, "lr": 3e-3, "warmup_steps": 30, "threads": 1, **train_options},
        "seq2seq": {"source_tokenizer": "char", "target_tokenizer": "symbols", "beam": 3, "eval_rows": 100},
    }
