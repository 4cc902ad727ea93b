"""Shared runs for the generation tests: a small digits classifier and a briefly trained VAE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import modelforge

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "data" / "digits.npz"


@pytest.fixture(scope="session")
def digits_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN on the digits (a few epochs: ~95 % accurate, enough to tell digits from noise)."""
    out = tmp_path_factory.mktemp("classifier") / "run"
    modelforge.train(
        ROOT / "examples" / "quickstart.yaml",
        out,
        overrides=["train.epochs=6", "model.channels=[8,16]", "train.threads=1", "train.lr=1e-2"],
    )
    return out


def generation_config(model: str = "vae", epochs: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "task": "generation",
        "seed": 0,
        "data": {"train": str(DIGITS), "target": "y", "split": {"valid": 0.1, "test": 0.2}},
        "model": {"type": model},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 1e-3, "threads": 1},
        **extra,
    }


@pytest.fixture(scope="session")
def vae_run(tmp_path_factory: pytest.TempPathFactory, digits_classifier: Path) -> Any:
    config = generation_config(epochs=25, generation={"classifier": str(digits_classifier), "samples": 200})
    return modelforge.train(config, tmp_path_factory.mktemp("vae") / "run")
