"""Shared data and runs for the seq2seq tests (the data: number_words.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from number_words import number_pairs, tiny_config

import modelforge


@pytest.fixture(scope="session")
def numbers_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("numbers") / "numbers.csv"
    number_pairs().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def numbers_run(numbers_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits → words, trained once per session (~15 s on one thread)."""
    out = tmp_path_factory.mktemp("numbers-run") / "run"
    modelforge.train(tiny_config(str(numbers_csv)), out)
    return out
