"""The issue's generation floor on the 8×8 digits: samples the quickstart classifier labels with mean
confidence ≥ 0.8, covering all 10 classes (slow: the full classifier and VAE examples)."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelforge
from modelforge.config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_vae_samples_meet_the_classifier_floor(tmp_path: Path) -> None:
    classifier = tmp_path / "classifier"
    modelforge.train(load_config(ROOT / "examples" / "quickstart.yaml", ["train.threads=1"]), classifier)
    config = load_config(ROOT / "examples" / "digits_vae.yaml", [f"generation.classifier={classifier}"])
    metrics = modelforge.train(config, tmp_path / "vae").metrics
    assert metrics["mean_confidence"] >= 0.8 and metrics["classes_covered"] == 10, metrics
    assert metrics["label_agreement"] >= 0.9, metrics
