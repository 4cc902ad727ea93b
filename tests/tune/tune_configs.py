"""The tuning tests' config (a 3-epoch MLP on breast cancer) and CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

BASE_CONFIG: dict[str, Any] = {
    "task": "classification",
    "seed": 0,
    "data": {"train": "breast_cancer.csv", "target": "target"},
    "model": {"type": "mlp", "hidden": [16]},
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.003},
    "tune": {
        "space": {
            "train.lr": {"loguniform": [1.0e-4, 1.0e-1]},
            "model.hidden": {"choice": [[16], [32, 16]]},
            "model.dropout": {"uniform": [0.0, 0.5]},
        },
        "metric": "valid_accuracy",
        "trials": 3,
        "pruner": "none",
    },
}


def write_config(folder: Path, csv: Path, **sections: Any) -> Path:
    """BASE_CONFIG with some sections replaced, written to folder/tune.yaml."""
    config = {**BASE_CONFIG, **sections}
    config["data"] = {**config["data"], "train": str(csv)}
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def modelforge(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelforge", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
