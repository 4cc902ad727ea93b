"""Trustworthy recommender training: checkpoints, exact resume after SIGKILL, SIGTERM saves and stops,
and a finished run that `modelforge audit` and `modelforge runs` accept."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli_runner import newest_step, signal_when
from modelforge.config import load_config
from modelforge.errors import ConfigError
from modelforge.files import read_jsonl
from modelforge.runs import list_runs
from modelforge.training.checkpoint import list_checkpoints, read_checkpoint
from modelforge.training.recommend import train_recommender

STEPS_PER_EPOCH = 50  # leave-last-out keeps 10 of each of the 40 users' 12 interactions; batch 8
# the two-tower model (dropout: the torch RNG matters) on implicit feedback (negatives: the sampler matters);
# checkpoints every 7 steps and never at an epoch's end, so a kill lands mid-epoch
TRAIN = {"epochs": 8, "batch_size": 8, "schedule": "cosine", "checkpoint_every": 7, "checkpoint_budget": 0.0}


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modelforge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def history(run_dir: Path) -> list[list[Any]]:
    keys = ("epoch", "step", "train_loss", "valid_recall@10", "valid_ndcg@10", "lr")
    return [[row[key] for key in keys] for row in read_jsonl(run_dir / "metrics.jsonl")]


@pytest.fixture(scope="module")
def config_file(recommend_config: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "two_tower.yaml"
    path.write_text(yaml.safe_dump(recommend_config("implicit", "two_tower", **TRAIN)))
    return path


@pytest.fixture(scope="module")
def reference(config_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run."""
    return train_recommender(load_config(config_file), tmp_path_factory.mktemp("runs") / "reference").path


def test_sigkill_mid_epoch_then_resume_is_bitwise(config_file: Path, reference: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    process = start_cli("train", str(config_file), "--out", str(run_dir), "--no-progress")
    signal_when(process, lambda: newest_step(run_dir) >= 14, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    meta, _ = read_checkpoint(list_checkpoints(run_dir / "checkpoints")[0])
    assert 0 < meta["state"]["batch"] < STEPS_PER_EPOCH, "the newest checkpoint is not mid-epoch"
    assert not (run_dir / "model.json").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "modelforge", "train", str(config_file), "--resume", str(run_dir), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert history(run_dir) == history(reference)
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["resumed"][0]["steps"] == meta["state"]["steps"] and "finished_at" in environment


def test_sigterm_saves_a_checkpoint_and_exits_143_then_resume_auto_is_bitwise(
    config_file: Path, reference: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "stopped"
    process = start_cli("train", str(config_file), "--out", str(run_dir), "--no-progress")
    stderr = signal_when(process, lambda: newest_step(run_dir) >= 7, signal.SIGTERM)
    assert process.returncode == 143, stderr
    stopped = stderr.strip().splitlines()[-1]
    assert f"stopped by SIGTERM after step {newest_step(run_dir)}" in stopped and "--resume" in stopped
    assert not (run_dir / "model.json").exists()

    resumed = train_recommender(load_config(config_file), run_dir, resume="auto")  # --out holds a started run
    assert resumed.path == run_dir
    assert (run_dir / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert history(run_dir) == history(reference)


def test_a_finished_run_passes_audit_and_shows_its_metric_in_runs(reference: Path) -> None:
    audited = subprocess.run(
        [sys.executable, "-m", "modelforge", "audit", str(reference)], capture_output=True, text=True, timeout=120
    )
    assert audited.returncode == 0, audited.stdout + audited.stderr
    environment = json.loads((reference / "environment.json").read_text())
    assert {"config_sha256", "git_commit", "versions", "data", "started_at", "finished_at"} <= set(environment)
    evaluation = json.loads((reference / "eval.json").read_text())
    assert evaluation["steps"] == TRAIN["epochs"] * STEPS_PER_EPOCH
    (row,) = [row for row in list_runs(reference.parent) if row["run"] == reference.name]
    assert row["status"] == "finished" and row["epochs"] == TRAIN["epochs"]
    assert float(row["value"]) == pytest.approx(evaluation[row["metric"]], abs=1e-4)


def test_resume_refuses_a_changed_config(recommend_config: Any, reference: Path) -> None:
    changed = load_config(recommend_config("implicit", "two_tower", **{**TRAIN, "lr": 0.1}))
    with pytest.raises(ConfigError, match=r"train\.lr: 0\.03 → 0\.1.*start a new run"):
        train_recommender(changed, resume=reference)
