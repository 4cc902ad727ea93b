"""Helpers of the transfer-learning tests: a tiny MiniLM config."""

from __future__ import annotations

from pathlib import Path


def tiny_config(data: Path, **model: object) -> dict[str, object]:
    return {
        "task": "classification",
        "data": {"train": str(data), "target": "label", "split": {"valid": 0.2, "test": 0.2}},
        "features": [{"name": "text", "type": "text", "tokenizer": "hf", "max_length": 24}],
        "model": {"type": "hf_encoder", **model},
        "train": {"epochs": 1, "batch_size": 32, "lr": 1e-3, "threads": 1},
    }
