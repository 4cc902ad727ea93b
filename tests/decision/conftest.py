"""Runs trained once per session on the skewed table of skewed_data.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from skewed_data import skewed_config, skewed_frame, train_run


@pytest.fixture(scope="session")
def skewed_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("skewed") / "skewed.csv"
    skewed_frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def flag_rate_run(skewed_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """decision: {max_flag_rate: 0.1} with temperature calibration."""
    config = skewed_config(skewed_csv, decision={"max_flag_rate": 0.1, "positive": "fraud"}, calibrate="temperature")
    return train_run(config, tmp_path_factory.mktemp("runs") / "flag-rate")


@pytest.fixture(scope="session")
def plain_run(skewed_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model without a decision section."""
    return train_run(skewed_config(skewed_csv), tmp_path_factory.mktemp("runs") / "plain")
