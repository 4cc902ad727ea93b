"""Shared data and runs for the speech-recognition tests (the data: tones.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tones import tiny_config, write_tones

import modelforge


@pytest.fixture(scope="session")
def tones_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 training clips of 2–5 tone-letters."""
    return write_tones(tmp_path_factory.mktemp("tones"), n=200, seed=0)


@pytest.fixture(scope="session")
def fresh_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 clips no run trained on (another seed)."""
    return write_tones(tmp_path_factory.mktemp("fresh"), n=60, seed=1, name="fresh.csv")


@pytest.fixture(scope="session")
def tones_run(tones_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained once per session (~3 s on one thread)."""
    out = tmp_path_factory.mktemp("tones-run") / "run"
    modelforge.train(tiny_config(str(tones_csv), epochs=20), out)
    return out
