"""Shared fixtures: tiny trained runs (used by the compression and export tests), trained once
per session in a few seconds, and helpers for one-line CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from modelforge.config import load_config
from modelforge.training.recipe import train

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
# examples name their data `dataset:NAME/FILE`; the shared copy beside the repo serves as the dataset cache
if SHARED_DATASETS.is_dir():
    os.environ.setdefault("MODELFORGE_DATA", str(SHARED_DATASETS))
# train.precision / threads `auto` cache their probe: one fresh cache per test session, not the user's
os.environ.setdefault("MODELFORGE_CACHE", tempfile.mkdtemp(prefix="modelforge-cache-"))
BREAST_CANCER = ROOT / "examples" / "data" / "breast_cancer.csv"
DIGITS = ROOT / "examples" / "data" / "digits.npz"


def mlp_config() -> dict:
    return {
        "task": "classification",
        "data": {"train": str(BREAST_CANCER), "target": "diagnosis"},
        "model": {"type": "mlp", "hidden": [64, 32]},
        "train": {"epochs": 3, "batch_size": 32},
    }


def cnn_config() -> dict:
    return {
        "task": "classification",
        "data": {"train": str(DIGITS), "target": "y", "split": {"valid": 0.1, "test": 0.2}},
        "features": [{"name": "x", "type": "image"}],
        "model": {"type": "cnn", "channels": [8, 16]},
        "train": {"epochs": 1, "batch_size": 64, "lr": 3e-3},
    }


def tiny_run(tmp_path_factory: pytest.TempPathFactory, name: str, config: dict) -> Path:
    """Trained once per test session, shared by tests/compress and tests/export (same path)."""
    out = tmp_path_factory.getbasetemp() / "compress-export-runs" / name
    if not (out / "model.json").exists():
        train(load_config(config), out, show_progress=False)
    return out


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory, "mlp", mlp_config())


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory, "cnn", cnn_config())


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelforge", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture
def cli():
    """`cli(*args)`: run `python -m modelforge ARGS`, capture output."""
    return run_cli


@pytest.fixture
def assert_one_line_error():
    """`assert_one_line_error(result, fragment)`: exit 2 and exactly one `error: ...` line naming it."""
    return one_line_error
