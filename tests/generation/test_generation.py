"""task: generation — models, training through the recipe, sampling, scoring, and the generate verb."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import modelforge
from modelforge.errors import ConfigError
from modelforge.generation.run import GeneratorRun
from modelforge.generation.score import frechet_distance, load_classifier, score_samples
from modelforge.models import build_model
from modelforge.models.generative import ImageGenerationSpec
from modelforge.run import load_run

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "data" / "digits.npz"


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_models_sample_images_in_range_and_learn(name: str) -> None:
    spec = ImageGenerationSpec(1, 8, 8, n_classes=10)
    model = build_model(name, spec, 0, {})
    images = model.sample(torch.arange(6) % 10, 6, torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 8, 8) and images.min() >= 0.0 and images.max() <= 1.0
    parameters = model.parameters() if name == "vae" else model.generator.parameters()
    assert sum(p.numel() for p in parameters) > 1000


def test_gan_rejects_sides_it_cannot_upsample_to() -> None:
    with pytest.raises(ConfigError, match="multiples of 4"):
        build_model("gan", ImageGenerationSpec(1, 10, 10, 0), 0, {})


def test_generative_models_need_task_generation(tmp_path: Path) -> None:
    config = {"task": "classification", "data": {"train": str(DIGITS), "target": "y"}, "model": {"type": "vae"}}
    with pytest.raises(ConfigError, match="needs task: generation"):
        modelforge.train(config, tmp_path / "run")


def test_frechet_distance_is_zero_for_equal_sets_and_grows_with_a_shift() -> None:
    points = np.random.default_rng(0).normal(size=(400, 5))
    assert frechet_distance(points, points) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(points, points + 1.0) == pytest.approx(5.0, rel=0.05)


def test_vae_run_trains_reloads_samples_and_is_scored(vae_run: GeneratorRun) -> None:
    metrics = vae_run.metrics
    history = vae_run.history
    assert history[-1]["valid_loss"] < history[0]["valid_loss"] and metrics["test_loss"] < history[0]["valid_loss"]
    assert metrics["samples"] == 200 and metrics["classes_covered"] == 10 and metrics["label_agreement"] > 0.7
    assert metrics["frechet_distance"] < 10 * metrics["frechet_distance_real_halves"]
    again = load_run(vae_run.path)
    assert isinstance(again, GeneratorRun)
    first, asked = again.sample(20, seed=1)
    second, _ = vae_run.sample(20, seed=1)
    np.testing.assert_allclose(first, second, atol=1e-6)
    assert asked[:3] == ["0", "1", "2"] and first.shape == (20, 1, 8, 8)
    _, asked = again.sample(5, label="3")
    assert asked == ["3"] * 5
    assert again.reconstruct(DIGITS, 4).shape == (8, 1, 8, 8)
    assert again.interpolate(DIGITS, pairs=2, steps=5).shape == (10, 1, 8, 8)
    assert again.evaluate(DIGITS)["loss"] > 0


def test_scores_tell_digits_from_noise(digits_classifier: Path) -> None:
    classifier = load_classifier(digits_classifier)
    data = np.load(DIGITS)
    real, labels = data["x"][:300], [str(v) for v in data["y"][:300]]
    noise = np.random.default_rng(0).random((300, 8, 8)).astype(np.float32)
    on_real = score_samples(classifier, real, labels, data["x"][300:900])
    on_noise = score_samples(classifier, noise, labels, data["x"][300:900])
    assert on_real["label_agreement"] > 0.8 and on_noise["label_agreement"] < 0.3
    assert on_real["classes_covered"] == 10 and on_real["frechet_distance"] < on_noise["frechet_distance"] / 5


def run_generate(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "modelforge", "generate", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_generate_verb_writes_grids_and_rejects_bad_input(vae_run: GeneratorRun, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    done = run_generate(str(vae_run.path), "--n", "20", "--out", str(grid))
    assert done.returncode == 0, done.stderr
    assert Image.open(grid).size == (4 * (10 * 9 + 1), 4 * (2 * 9 + 1))  # 10 columns (one per class) × 2 rows
    pairs = tmp_path / "pairs.png"
    done = run_generate(
        str(vae_run.path), "--mode", "reconstruct", "--data", str(DIGITS), "--n", "6", "--out", f"{pairs}"
    )
    assert done.returncode == 0, done.stderr
    assert Image.open(pairs).size == (4 * (2 * 9 + 1), 4 * (6 * 9 + 1))
    failed = run_generate(str(vae_run.path), "--label", "11", "--out", str(grid))
    assert failed.returncode == 2 and failed.stderr.strip().count("\n") == 0
    assert "--label 11: not a class" in failed.stderr


def test_wrong_image_size_is_a_clear_error(vae_run: GeneratorRun, tmp_path: Path) -> None:
    big = tmp_path / "big.npz"
    np.savez(big, x=np.zeros((4, 16, 16), dtype=np.float32), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(modelforge.errors.DataError, match="generates 8×8 images"):
        vae_run.reconstruct(big, 2)


def test_classifier_must_be_a_classification_run(vae_run: GeneratorRun) -> None:
    with pytest.raises(modelforge.errors.ModelforgeError, match="needs a classification run"):
        load_classifier(vae_run.path)


def test_a_missing_scorer_is_refused_before_training(tmp_path: Path) -> None:
    from modelforge.config import load_config

    config = load_config(
        Path(__file__).resolve().parents[2] / "examples" / "digits_vae.yaml",
        [f"generation.classifier={tmp_path / 'no-classifier'}"],  # epochs: 150, none of them spent
    )
    with pytest.raises(modelforge.errors.ModelforgeError, match=r"generation\.classifier: .* is not a run directory"):
        modelforge.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
