"""Tiny trained runs for the insight tests (reports, explanations, slices, audit).

Every run trains in-process for a few seconds on real data (scikit-learn's breast cancer and
diabetes tables, SST-2 sentences, the 8×8 digits), except the synthetic table whose label
one column decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from insight_runs import ROOT, SHAKESPEARE, SST2, train_run


# ----------------------------------------------------------------------------- data
@pytest.fixture(scope="session")
def cancer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Breast cancer with a label column and a `site` column (three groups) left out of training."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["diagnosis"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    frame["site"] = np.random.default_rng(0).choice(["north", "south", "east"], len(frame))
    path = tmp_path_factory.mktemp("data") / "cancer.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def diabetes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    path = tmp_path_factory.mktemp("data") / "diabetes.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def one_column_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic: only `decisive` decides the label; four numeric and one category column are noise."""
    rng = np.random.default_rng(0)
    n = 800
    frame = pd.DataFrame({f"noise{i}": rng.normal(size=n) for i in range(1, 5)})
    frame.insert(2, "decisive", rng.normal(size=n))
    frame["color"] = rng.choice(["red", "green", "blue", "grey"], n)
    frame["label"] = np.where(frame["decisive"] > 0, "yes", "no")
    path = tmp_path_factory.mktemp("data") / "one_column.csv"
    frame.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- runs
@pytest.fixture(scope="session")
def classifier_run(tmp_path_factory: pytest.TempPathFactory, cancer_csv: Path) -> Any:
    config = {
        "task": "classification",
        "data": {"train": str(cancer_csv), "target": "diagnosis", "drop": ["site"], "split": {"test": 0.3}},
        "model": {"type": "mlp", "hidden": [32]},
        "train": {"epochs": 4, "batch_size": 32, "lr": 3e-3, "threads": 1},
        "card": {
            "intended_use": "Teaching example for modelforge reports; not for diagnosis.",
            "limitations": "569 rows from one hospital.",
            "owners": ["insight team"],
        },
    }
    return train_run(config, tmp_path_factory.mktemp("runs") / "classifier")


@pytest.fixture(scope="session")
def regressor_run(tmp_path_factory: pytest.TempPathFactory, diabetes_csv: Path) -> Any:
    config = {
        "task": "regression",
        "data": {"train": str(diabetes_csv), "target": "target", "split": {"test": 0.3, "stratify": False}},
        "model": {"type": "mlp", "hidden": [32]},
        "train": {"epochs": 4, "batch_size": 32, "lr": 3e-3, "threads": 1},
    }
    return train_run(config, tmp_path_factory.mktemp("runs") / "regressor")


@pytest.fixture(scope="session")
def one_column_run(tmp_path_factory: pytest.TempPathFactory, one_column_csv: Path) -> Any:
    config = {
        "task": "classification",
        "data": {"train": str(one_column_csv), "target": "label"},
        "features": [
            *({"name": n, "type": "numeric"} for n in ("noise1", "noise2", "decisive", "noise3", "noise4")),
            {"name": "color", "type": "category", "embedding_dim": 3},
        ],
        "model": {"type": "mlp", "hidden": [32]},
        "train": {"epochs": 12, "batch_size": 32, "lr": 5e-3, "threads": 1},
    }
    return train_run(config, tmp_path_factory.mktemp("runs") / "one_column")


@pytest.fixture(scope="session")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not SST2.exists():
        pytest.skip(f"{SST2} not found (shared datasets)")
    frame = pd.read_csv(SST2, keep_default_na=False, nrows=4000)
    frame = frame[frame["text"].str.split().str.len().between(4, 14)].head(400)
    folder = tmp_path_factory.mktemp("data")
    frame.to_csv(folder / "sst2.csv", index=False)
    config = {
        "task": "classification",
        "data": {"train": str(folder / "sst2.csv"), "target": "label"},
        "features": [{"name": "text", "type": "text", "max_length": 16}],
        "model": {"type": "transformer", "width": 16, "depth": 2, "heads": 2, "dropout": 0.0},
        "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3, "threads": 1},
    }
    return train_run(config, tmp_path_factory.mktemp("runs") / "text")


@pytest.fixture(scope="session")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    digits = np.load(ROOT / "examples" / "data" / "digits.npz")
    folder = tmp_path_factory.mktemp("data")
    np.savez(folder / "digits.npz", x=digits["x"][:600], y=digits["y"][:600])
    config = {
        "task": "classification",
        "data": {"train": str(folder / "digits.npz"), "target": "y"},
        "model": {"type": "cnn", "channels": [8, 16]},
        "train": {"epochs": 2, "batch_size": 64, "lr": 3e-3, "threads": 1},
    }
    return train_run(config, tmp_path_factory.mktemp("runs") / "image")


@pytest.fixture(scope="session")
def language_model_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-step character GPT on 30 kB of tinyshakespeare."""
    from modelforge.config import load_config
    from modelforge.training.lm import train_language_model

    if not SHAKESPEARE.exists():
        pytest.skip(f"{SHAKESPEARE} not found (shared datasets)")
    folder = tmp_path_factory.mktemp("data")
    (folder / "shakespeare.txt").write_text(SHAKESPEARE.read_text(encoding="utf-8")[:30_000], encoding="utf-8")
    config = {
        "task": "language-modeling",
        "data": {"train": str(folder / "shakespeare.txt"), "tokenizer": "char", "valid_fraction": 0.1},
        "model": {"type": "gpt", "layers": 2, "heads": 2, "width": 32, "context": 32, "dropout": 0.0},
        "train": {"batch_size": 8, "max_steps": 30, "lr": 3e-3, "eval_every": 10, "eval_batches": 2, "threads": 1},
    }
    out = tmp_path_factory.mktemp("runs") / "gpt"
    train_language_model(load_config(config), out, show_progress=False)
    return out
