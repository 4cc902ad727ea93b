"""Generation runs are as trustworthy as supervised ones: checkpoints, exact resume after SIGKILL or
SIGTERM (VAE and GAN, whose two optimizers are both checkpointed), an audited run directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cli_runner import newest_step, signal_when
from modelforge.config import load_config
from modelforge.generation.recipe import train_generator
from modelforge.runs import list_runs
from modelforge.training.checkpoint import list_checkpoints, read_checkpoint

REPO = Path(__file__).resolve().parents[2]
BATCHES_PER_EPOCH = 14  # 210 training rows of the 8×8 digits, batch 16


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 of sklearn's 8×8 digits (pixels 0..16) with their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=digits.images[:300].astype(np.float32), y=digits.target[:300])
    return path


def tiny_config(data: Path, model: str, **train: Any) -> dict[str, Any]:
    options = {"latent": 4, "hidden": 32} if model == "vae" else {"latent": 4, "width": 4}
    return {
        "task": "generation",
        "seed": 5,
        "data": {"train": str(data), "target": "y", "split": {"valid": 0.1, "test": 0.2}},
        "model": {"type": model, **options},
        "train": {"epochs": 5, "batch_size": 16, "lr": 2e-3, "betas": [0.5, 0.999], "threads": 1, **train},
    }


def start_training(config: dict[str, Any], config_path: Path, *args: str) -> subprocess.Popen[str]:
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "modelforge", "train", str(config_path), "--no-progress", *args]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=environment
    )


@pytest.mark.parametrize(
    ("model", "signum"),
    [
        pytest.param("vae", signal.SIGKILL, id="vae-sigkill"),
        pytest.param("gan", signal.SIGKILL, id="gan-sigkill"),
        pytest.param("gan", signal.SIGTERM, id="gan-sigterm"),
    ],
)
def test_a_stopped_run_resumed_ends_bitwise_equal_to_the_uninterrupted_one(
    tmp_path: Path, digits_npz: Path, model: str, signum: int
) -> None:
    config = tiny_config(digits_npz, model, checkpoint_every=2)
    reference = train_generator(load_config(config), tmp_path / "reference").path
    run_dir = tmp_path / "stopped"

    process = start_training(config, tmp_path / "run.yaml", "--out", str(run_dir))
    signal_when(process, lambda: newest_step(run_dir) >= 16, signum)  # past epoch 1, mid-epoch 2 or later
    if signum == signal.SIGTERM:
        assert process.returncode == 143  # the step finished, a checkpoint saved, a clean exit
    else:
        assert process.returncode == -signal.SIGKILL
    meta, _ = read_checkpoint(list_checkpoints(run_dir / "checkpoints")[0])
    assert meta["state"]["steps"] < 5 * BATCHES_PER_EPOCH and not (run_dir / "model.json").exists()
    if model == "gan":
        assert len(meta["extra_optimizers"]) == 1  # the generator's, beside the discriminator's

    resumed = train_generator(load_config(config), resume=run_dir)
    assert resumed.path == run_dir
    assert (run_dir / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in history] == [
        {k: v for k, v in row.items() if k != "seconds"} for row in expected
    ]
    environment = json.loads((run_dir / "environment.json").read_text())
    assert len(environment["resumed"]) == 1 and "finished_at" in environment


def test_a_finished_generation_run_passes_audit_and_is_listed(tmp_path: Path, digits_npz: Path) -> None:
    runs = tmp_path / "runs"
    run = train_generator(load_config(tiny_config(digits_npz, "vae", epochs=2)), runs / "vae")
    environment = json.loads((run.path / "environment.json").read_text())
    assert {"config_sha256", "command", "torch_threads", "data", "finished_at"} <= set(environment)
    assert len(run.history) == 2 and (run.path / "tensorboard").is_dir() and list_checkpoints(run.path / "checkpoints")

    audit = subprocess.run(
        [sys.executable, "-m", "modelforge", "audit", str(run.path)], capture_output=True, text=True, cwd=REPO
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr

    (row,) = list_runs(runs)
    assert row["task"] == "generation" and row["metric"] == "test_loss" and row["status"] == "finished"
    assert float(row["value"]) == pytest.approx(run.metrics["test_loss"], abs=1e-4)


def test_resume_refuses_a_changed_config(tmp_path: Path, digits_npz: Path) -> None:
    config = tiny_config(digits_npz, "gan", epochs=1)
    run = train_generator(load_config(config), tmp_path / "run")
    with pytest.raises(Exception, match=r"train\.lr: 0\.002 → 0\.01.*start a new run"):
        train_generator(load_config({**config, "train": {**config["train"], "lr": 1e-2}}), resume=run.path)
