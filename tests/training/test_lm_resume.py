"""Exact resume for the GPT language model: SIGKILL at an arbitrary step, resume, same bits."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest
from training_runs import gpt_config, run_cli, start_cli, write_config

from cli_runner import newest_step, signal_when
from modelforge.config import load_config
from modelforge.files import read_jsonl
from modelforge.training.lm import train_language_model


def test_gpt_killed_at_an_arbitrary_step_resumes_bitwise(tmp_path: Path, shakespeare_txt: Path) -> None:
    config = load_config(gpt_config(shakespeare_txt))
    reference = train_language_model(config, tmp_path / "reference").path
    config_path = write_config(tmp_path / "gpt.yaml", gpt_config(shakespeare_txt, checkpoint_every=3))
    run_dir = tmp_path / "killed"

    kill_after = random.choice([s for s in range(6, 50, 3) if s % 20 not in (0, 18)])  # between evaluations
    process = start_cli("train", str(config_path), "--out", str(run_dir), "--no-progress")
    signal_when(process, lambda: newest_step(run_dir) >= kill_after)
    assert process.returncode == -signal.SIGKILL
    assert 0 < newest_step(run_dir) < 60

    resumed = train_language_model(load_config(config_path), resume=run_dir).path
    assert (reference / "model.safetensors").read_bytes() == (resumed / "model.safetensors").read_bytes(), (
        f"killed after step {kill_after}: weights differ"
    )
    keys = ("step", "train_loss", "val_loss", "lr", "sample")
    expected, actual = read_jsonl(reference / "metrics.jsonl"), read_jsonl(resumed / "metrics.jsonl")
    assert [[row[k] for k in keys] for row in expected] == [[row[k] for k in keys] for row in actual]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(resumed / "tensorboard")).Reload()  # events after the checkpoint purged
    assert [(e.step, e.value) for e in events.Scalars("eval/val_loss")] == [
        (row["step"], pytest.approx(row["val_loss"])) for row in expected
    ]


@pytest.mark.slow
def test_gpt_on_two_gloo_processes_matches_one(tmp_path: Path, shakespeare_txt: Path) -> None:
    raw = gpt_config(shakespeare_txt)
    raw["model"]["dropout"] = 0.0  # each rank draws its own dropout masks
    single = train_language_model(load_config(raw), tmp_path / "single").path
    config_path = write_config(tmp_path / "gpt.yaml", raw)
    run_dir = tmp_path / "ddp"
    result = run_cli("train", str(config_path), "--nproc", "2", "--out", str(run_dir), "--no-progress", timeout=600)
    assert result.returncode == 0, result.stderr[-1500:]
    one, two = read_jsonl(single / "metrics.jsonl"), read_jsonl(run_dir / "metrics.jsonl")
    assert [row["step"] for row in one] == [row["step"] for row in two]
    for key in ("train_loss", "val_loss"):
        assert abs(one[-1][key] - two[-1][key]) / abs(one[-1][key]) < 1e-5, (key, one[-1][key], two[-1][key])
