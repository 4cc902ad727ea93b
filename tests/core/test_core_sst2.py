"""SST-2 floors from scratch (slow: minutes each; `make test-all`). Needs ../shared/datasets/sst2."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import modelforge

ROOT = Path(__file__).resolve().parents[2]
SST2 = ROOT.parent / "shared" / "datasets" / "sst2"


@pytest.mark.slow
@pytest.mark.skipif(not (SST2 / "train.csv").exists(), reason="../shared/datasets/sst2 is not on this machine")
@pytest.mark.parametrize(("model", "floor"), [("lstm", 0.82), ("transformer", 0.80)])
def test_sst2_validation_accuracy_floor_within_ten_minutes(model: str, floor: float, tmp_path: Path) -> None:
    started = time.perf_counter()
    run = modelforge.train(ROOT / "examples" / f"sst2_{model}.yaml", tmp_path / model)
    minutes = (time.perf_counter() - started) / 60
    best_valid = max(row["valid_accuracy"] for row in run.history)
    assert best_valid >= floor, run.history
    assert minutes <= 10, f"{minutes:.1f} minutes"
