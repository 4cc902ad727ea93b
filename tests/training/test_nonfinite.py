"""A non-finite loss stops the run with the step and the last good checkpoint named, or, with
train.on_nonfinite: skip, the step is skipped (no update) and the run goes on to the end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from training_runs import gpt_config, mlp_config, run_cli, write_config

from modelforge.config import load_config
from modelforge.files import read_jsonl
from modelforge.training.lm import train_language_model
from modelforge.training.recipe import train

EXPLODING = {"lr": 1e30, "optimizer": "sgd", "schedule": "constant", "epochs": 3}  # step 1 fine, then nan


def test_supervised_nonfinite_loss_stops_with_the_step_named(tmp_path: Path, breast_cancer_csv: Path) -> None:
    config = write_config(tmp_path / "mlp.yaml", mlp_config(breast_cancer_csv, **EXPLODING))
    result = run_cli("train", str(config), "--out", str(tmp_path / "run"), "--no-progress")
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "loss is nan at epoch 1 step 2" in message and "train.on_nonfinite: skip" in message, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_supervised_skip_leaves_the_weights_of_the_last_finite_step(tmp_path: Path, breast_cancer_csv: Path) -> None:
    raw = mlp_config(breast_cancer_csv, **EXPLODING, on_nonfinite="skip")
    run = train(load_config(raw), tmp_path / "run", show_progress=False)
    rows = read_jsonl(run.path / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 1, 1]  # only the first step updated the weights
    batches_per_epoch = rows[0]["skipped_batches"] + 1  # every batch after the first is skipped
    assert math.isnan(rows[1]["train_loss"]) and rows[-1]["skipped_batches"] == 3 * batches_per_epoch - 1
    assert all(bool(torch.isfinite(value).all()) for value in run.model.state_dict().values())


def test_language_model_skip_goes_on_and_stop_names_the_step(tmp_path: Path, shakespeare_txt: Path) -> None:
    exploding = {"lr": 1e30, "warmup_steps": 0, "min_lr": 1e30, "max_steps": 12, "eval_every": 6}
    with pytest.raises(Exception, match=r"loss is nan at step \d+; .*on_nonfinite: skip"):
        train_language_model(load_config(gpt_config(shakespeare_txt, **exploding)), tmp_path / "stop")

    raw = gpt_config(shakespeare_txt, **exploding, on_nonfinite="skip")
    run = train_language_model(load_config(raw), tmp_path / "skip").path
    rows = read_jsonl(run / "metrics.jsonl")
    assert [row["step"] for row in rows] == [6, 12]
    assert 0 < rows[-1]["skipped_steps"] <= 12 and rows[-1]["skipped_steps"] >= rows[0]["skipped_steps"]
    assert (run / "model.safetensors").exists()
