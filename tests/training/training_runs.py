"""Tiny, fast training runs for the tests: a real tabular dataset, configs, CLI subprocesses, kills."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def breast_cancer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    path = tmp_path_factory.mktemp("data") / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    return path


def mlp_config(data: Path, **train: Any) -> dict[str, Any]:
    """A 30-feature MLP with dropout (so the torch RNG matters), a cosine schedule, one thread."""
    return {
        "task": "classification",
        "seed": 3,
        "data": {"train": str(data), "target": "target", "split": {"valid": 0.1, "test": 0.2}},
        "model": {"type": "mlp", "hidden": [64, 32], "dropout": 0.2},
        "train": {"epochs": 6, "batch_size": 16, "lr": 3e-3, "schedule": "cosine", "threads": 1, **train},
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def modelforge(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelforge", *args]


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(modelforge(*args), capture_output=True, text=True, timeout=timeout, cwd=REPO, env=cli_env())


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        modelforge(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=cli_env()
    )


SHAKESPEARE = REPO.parent / "shared" / "datasets" / "tinyshakespeare" / "input.txt"
EXCERPT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
)


@pytest.fixture(scope="session")
def shakespeare_txt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 kB of real Shakespeare (a repeated excerpt when the shared folder is absent)."""
    text = SHAKESPEARE.read_text(encoding="utf-8")[:30_000] if SHAKESPEARE.exists() else EXCERPT * 300
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_text(text, encoding="utf-8")
    return path


def gpt_config(data: Path, **train: Any) -> dict[str, Any]:
    """A 2-layer GPT with dropout (the torch RNG matters) and the batch sampler's own generator."""
    return {
        "task": "language-modeling",
        "seed": 1,
        "data": {"train": str(data), "tokenizer": "char"},
        "model": {"type": "gpt", "layers": 2, "heads": 2, "width": 32, "context": 32, "dropout": 0.1},
        "train": {
            "max_steps": 60,
            "batch_size": 8,
            "lr": 3e-3,
            "warmup_steps": 5,
            "eval_every": 20,
            "eval_batches": 2,
            "compile": False,
            "threads": 1,
            **train,
        },
    }
