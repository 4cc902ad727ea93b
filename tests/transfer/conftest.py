"""Tiny SST-2 slices and tiny MiniLM runs shared by the transfer-learning tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from transfer_fixtures import tiny_config

SST2 = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "sst2"
if not SST2.exists():
    SST2 = Path("/work/shared/datasets/sst2")


@pytest.fixture(scope="session")
def sst2_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 labelled SST-2 validation sentences (real data, both classes)."""
    if not (SST2 / "validation.csv").exists():
        pytest.skip(f"SST-2 not found at {SST2}")
    frame = pd.read_csv(SST2 / "validation.csv", keep_default_na=False).sample(160, random_state=0)
    path = tmp_path_factory.mktemp("sst2") / "sst2_small.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def lora_run(sst2_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    """A LoRA MiniLM run trained for 3 steps in process."""
    import modelforge
    from modelforge.config import load_config

    config = load_config(tiny_config(sst2_csv, lora={"rank": 4, "alpha": 8, "targets": ["query", "value"]}))
    return modelforge.train(config, tmp_path_factory.mktemp("runs") / "lora", show_progress=False)
