"""Fixtures for the core lifecycle tests: small real data sets written to disk."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def modelforge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelforge", *args]


@pytest.fixture
def breast_cancer_csv(tmp_path: Path) -> Path:
    target = tmp_path / "breast_cancer.csv"
    shutil.copy(EXAMPLES / "data" / "breast_cancer.csv", target)
    return target


@pytest.fixture
def mixed_csv(tmp_path: Path) -> Path:
    """Numeric, category and text columns with missing values; the label is the majority vote of all three."""
    rng = np.random.default_rng(0)
    n = 240
    size = rng.normal(10, 3, n)
    color = rng.choice(["red", "green", "blue"], n)
    liked = rng.random(n) < 0.5
    praise, scorn = ["great", "fun", "lovely"], ["dull", "boring", "tired"]
    nouns = ["film", "story", "movie", "plot", "cast"]
    words = np.array(
        [
            f"{rng.choice(praise if good else scorn)} {rng.choice(praise if good else scorn)} {rng.choice(nouns)}"
            for good in liked
        ]
    )  # a phrase of a few words, many different ones: text, not a category
    votes = (size > 10).astype(int) + (color == "red") + liked
    label = np.where(votes >= 2, "yes", "no")
    frame = pd.DataFrame({"size": size, "color": color, "review": words, "label": label})
    frame.loc[::17, "size"] = np.nan
    frame.loc[::23, "color"] = None
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Two classes of 12×12 PNGs: bright top half vs bright bottom half."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for label, rows in (("top", slice(0, 6)), ("bottom", slice(6, 12))):
        (root / label).mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 60, (12, 12), dtype=np.uint8)
            pixels[rows] += 150
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root
