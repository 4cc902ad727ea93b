"""Fingerprints of the training rows: `evaluate` warns when it scores rows the model trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelforge.data import row_hashes
from modelforge.data.row_hashes import (
    TrainingRowsWarning,
    load_training_rows,
    save_training_rows,
    warn_if_training_rows,
)


def table(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(start, start + n), "city": [f"c{i % 7}" for i in range(n)], "y": 0})


def test_overlap_counts_rows_whatever_their_dtype_or_label(tmp_path: Path) -> None:
    path = tmp_path / "rows.safetensors"
    assert save_training_rows(path, table(100), ["x", "city"])
    saved = load_training_rows(path)
    assert saved is not None and saved.columns == ["x", "city"] and saved.below is None
    mixed = pd.concat([table(30, start=70), table(10, start=500)], ignore_index=True)
    mixed["x"] = mixed["x"].astype("float64")  # 70 and 70.0 are the same input
    mixed["y"] = 1  # another label does not make it a new row
    assert saved.overlap(mixed) == (30, 40)
    assert saved.overlap(table(5, start=1000)) == (0, 5)
    assert saved.overlap(mixed.drop(columns="city")) is None  # columns missing: nothing to say


def test_a_sample_of_hashes_above_the_cap_estimates_the_share(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(row_hashes, "MAX_HASHES", 500)
    path = tmp_path / "rows.safetensors"
    save_training_rows(path, table(5000), ["x", "city"])
    saved = load_training_rows(path)
    assert saved is not None and len(saved.hashes) == 500 and saved.below is not None
    half = pd.concat([table(1000, start=0), table(1000, start=10_000)], ignore_index=True)
    found, total = saved.overlap(half)
    assert total == 2000 and 800 < found < 1200


def test_rows_of_arrays_are_not_fingerprinted(tmp_path: Path) -> None:
    images = pd.DataFrame({"image": [np.zeros((2, 2)) for _ in range(3)]})
    assert not save_training_rows(tmp_path / "rows.safetensors", images, ["image"])
    assert not (tmp_path / "rows.safetensors").exists()


def test_warning_names_the_count_and_share(tmp_path: Path) -> None:
    save_training_rows(tmp_path / "train_rows.safetensors", table(10), ["x", "city"])
    with pytest.warns(TrainingRowsWarning, match=r"5 of 20 rows \(25.0%\) also appear in the training data"):
        warn_if_training_rows(tmp_path, pd.concat([table(5), table(15, start=100)], ignore_index=True))
    assert warn_if_training_rows(tmp_path / "elsewhere", table(3)) is None  # a run without fingerprints
