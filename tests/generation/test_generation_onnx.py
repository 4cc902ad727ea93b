"""A generator exported to ONNX (its decoder: z, labels → images) samples like the eager run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelforge
from modelforge.export.graphs import load_onnx_generator_run
from modelforge.export.recipe import export_run
from modelforge.generation.run import load_generator_run

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "data" / "digits.npz"


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_onnx_decoder_samples_like_the_run(model: str, tmp_path: Path, cli) -> None:
    config = {
        "task": "generation",
        "seed": 0,
        "data": {"train": str(DIGITS), "target": "y", "split": {"valid": 0.1, "test": 0.2}},
        "model": {"type": model, **({"hidden": 32} if model == "vae" else {"width": 4})},
        "train": {"epochs": 1, "batch_size": 64, "lr": 1e-3, "threads": 1},
    }
    run_dir = Path(modelforge.train(config, tmp_path / "run").path)
    done = cli("export", run_dir, "--format", "onnx")
    assert done.returncode == 0, done.stderr
    assert "max abs diff" in done.stdout
    run = load_generator_run(run_dir)
    expected, asked = run.sample(12, None, seed=3, temperature=0.8)
    got, got_asked = load_onnx_generator_run(run_dir).sample(12, None, seed=3, temperature=0.8)
    assert got_asked == asked
    assert np.abs(got - expected).max() <= 1e-5
    grid = cli("generate", run_dir, "--engine", "onnx", "--n", "10", "--out", tmp_path / "grid.png", "--seed", "1")
    assert grid.returncode == 0, grid.stderr
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_serve_with_the_onnx_engine_samples_like_eager(tmp_path: Path) -> None:
    from modelforge.serve.services import ModelSpec, load_image_service

    config = {
        "task": "generation",
        "data": {"train": str(DIGITS), "target": "y"},
        "model": {"type": "vae", "hidden": 32},
        "train": {"epochs": 1, "threads": 1},
    }
    run_dir = Path(modelforge.train(config, tmp_path / "run").path)
    export_run(run_dir, "onnx")
    spec = ModelSpec.parse(f"digits={run_dir}")
    eager, onnx = load_image_service(spec, "torch"), load_image_service(spec, "onnx")
    assert onnx.sample(4, "3", 7, 1.0, False) == eager.sample(4, "3", 7, 1.0, False)
