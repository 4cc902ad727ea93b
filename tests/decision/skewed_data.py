"""A small skewed two-class table (about 8 % positives, made with scikit-learn), its config, and training it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEED = 0


def skewed_frame(rows: int = 3000, seed: int = SEED) -> pd.DataFrame:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows,
        n_features=8,
        n_informative=5,
        weights=[0.92],
        class_sep=1.0,
        flip_y=0.01,
        random_state=seed,
    )
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    frame["label"] = np.where(y == 1, "fraud", "ok")
    return frame


def skewed_config(csv: Path, **sections: Any) -> dict[str, Any]:
    return {
        "task": "classification",
        "seed": SEED,
        "data": {"train": str(csv), "target": "label", "split": {"valid": 0.3, "test": 0.2}},
        "model": {"type": "mlp", "hidden": [32]},
        "train": {"epochs": 8, "batch_size": 64, "lr": 3e-3, "threads": 1},
        **sections,
    }


def train_run(config: dict[str, Any], out: Path) -> Path:
    from modelforge.config import load_config
    from modelforge.training.recipe import train

    train(load_config(config), out, show_progress=False)
    return out
