"""Exact resume: a run killed at any moment and resumed ends bitwise equal to the uninterrupted one."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from training_runs import mlp_config, run_cli, start_cli, write_config

from cli_runner import newest_step, signal_when
from modelforge.config import load_config
from modelforge.files import read_jsonl
from modelforge.training.checkpoint import CheckpointWarning, list_checkpoints, read_checkpoint
from modelforge.training.interrupt import TrainingInterrupted
from modelforge.training.loop import TrainingError
from modelforge.training.recipe import train

BATCHES_PER_EPOCH = 25  # 398 training rows of breast cancer, batch 16
TOTAL_STEPS = 6 * BATCHES_PER_EPOCH


def assert_same_weights(expected: Path, actual: Path) -> None:
    first, second = load_file(str(expected / "model.safetensors")), load_file(str(actual / "model.safetensors"))
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert not different, f"weights differ from the uninterrupted run: {different}"
    assert (expected / "model.safetensors").read_bytes() == (actual / "model.safetensors").read_bytes()


def assert_interrupted_run_resumes_bitwise(config: Any, folder: Path, epoch: int = 2) -> Path:
    """Trains `config` whole, then again with Ctrl-C after `epoch` and `resume: auto`: the same weights.
    The uninterrupted run's directory."""
    reference = train(config, folder / "reference", show_progress=False).path

    def interrupt(row: dict[str, Any]) -> None:
        if row["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(config, folder / "stopped", show_progress=False, on_epoch=interrupt)
    assert_same_weights(reference, train(config, folder / "stopped", show_progress=False, resume="auto").path)
    return reference


def assert_same_history(expected: Path, actual: Path) -> None:
    keys = ("epoch", "step", "train_loss", "valid_loss", "valid_accuracy", "lr")
    first, second = read_jsonl(expected / "metrics.jsonl"), read_jsonl(actual / "metrics.jsonl")
    assert [[row[k] for k in keys] for row in first] == [[row[k] for k in keys] for row in second]


def temp_files(run_dir: Path) -> list[Path]:
    return list((run_dir / "checkpoints").glob(".step-*.tmp"))


def test_sigkill_mid_epoch_and_during_a_checkpoint_write_then_resume_is_bitwise(
    tmp_path: Path, breast_cancer_csv: Path
) -> None:
    config = mlp_config(breast_cancer_csv)
    reference = train(load_config(config), tmp_path / "reference", show_progress=False).path
    config_path = write_config(tmp_path / "run.yaml", mlp_config(breast_cancer_csv, checkpoint_every=3))
    run_dir = tmp_path / "killed"

    # 1. SIGKILL right after an arbitrary mid-epoch checkpoint
    kill_after = random.choice([s for s in range(12, 120, 3) if all((s + d) % BATCHES_PER_EPOCH for d in (0, 3, 6))])
    process = start_cli("train", str(config_path), "--out", str(run_dir), "--no-progress")
    signal_when(process, lambda: newest_step(run_dir) >= kill_after)
    assert process.returncode == -signal.SIGKILL
    meta, _ = read_checkpoint(list_checkpoints(run_dir / "checkpoints")[0])
    assert 0 < meta["state"]["batch"] < BATCHES_PER_EPOCH, f"killed after step {kill_after}: not mid-epoch"
    assert not (run_dir / "model.json").exists()

    # 2. resume, checkpointing every step (a key that cannot change the result), SIGKILL inside a write
    killed_mid_write = False
    for _ in range(3):
        before = newest_step(run_dir)
        process = start_cli(
            "train", str(config_path), "--resume", str(run_dir), "--no-progress", "--set", "train.checkpoint_every=1"
        )
        signal_when(process, lambda before=before: newest_step(run_dir) > before + 2 and bool(temp_files(run_dir)))
        killed_mid_write = bool(temp_files(run_dir))  # the rename never happened: killed inside the write
        if killed_mid_write:
            break
    assert killed_mid_write, "no kill landed inside a checkpoint write in three tries"

    # 3. resume to the end (in this process: the CLI's --resume is exercised above and in the DDP test)
    train(load_config(config_path), show_progress=False, resume=run_dir)
    assert not temp_files(run_dir)
    assert_same_weights(reference, run_dir)
    assert_same_history(reference, run_dir)


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, breast_cancer_csv: Path) -> None:
    config = load_config(mlp_config(breast_cancer_csv, epochs=3, checkpoint_every=10, keep_checkpoints=3))
    reference = train(config, tmp_path / "reference", show_progress=False).path
    run_dir = tmp_path / "damaged"
    shutil.copytree(reference, run_dir)
    (run_dir / "model.json").unlink()
    newest, second = list_checkpoints(run_dir / "checkpoints")[:2]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    data = bytearray(second.read_bytes())
    data[-100] ^= 0xFF  # one flipped bit pattern in the tensor data: the checksum catches it
    second.write_bytes(bytes(data))

    with pytest.warns(CheckpointWarning) as caught:
        resumed = train(config, show_progress=False, resume=run_dir)
    assert {str(newest), str(second)} <= {str(w.message).split(": ")[0] for w in caught}
    assert "checksum mismatch" in " ".join(str(w.message) for w in caught)
    assert_same_weights(reference, resumed.path)
    assert_same_history(reference, resumed.path)


def test_sigint_saves_and_stops_a_second_one_aborts_and_resume_is_exact(
    tmp_path: Path, breast_cancer_csv: Path
) -> None:
    config = load_config(mlp_config(breast_cancer_csv, epochs=2))
    reference = train(config, tmp_path / "reference", show_progress=False).path

    def interrupt_after_epoch_one(row: dict) -> None:
        if row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the loop finishes the step, saves, stops

    with pytest.raises(TrainingInterrupted) as stopped:
        train(config, tmp_path / "stopped", show_progress=False, on_epoch=interrupt_after_epoch_one)
    assert stopped.value.exit_code == 130
    assert stopped.value.checkpoint is not None and stopped.value.checkpoint.exists()
    assert read_checkpoint(stopped.value.checkpoint)[0]["state"]["epoch"] == 2  # the epoch-end checkpoint

    def interrupt_twice(row: dict) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "aborted", show_progress=False, on_epoch=interrupt_twice)

    resumed = train(config, tmp_path / "stopped", show_progress=False, resume="auto")  # continues the --out run
    assert resumed.path == tmp_path / "stopped"
    assert_same_weights(reference, resumed.path)


def test_resume_refuses_a_changed_config_and_names_the_keys(tmp_path: Path, breast_cancer_csv: Path) -> None:
    config = mlp_config(breast_cancer_csv, epochs=1)
    run_dir = train(load_config(config), tmp_path / "run", show_progress=False).path
    config_path = write_config(tmp_path / "run.yaml", config)

    changed = run_cli(
        "train", str(config_path), "--resume", str(run_dir), "--set", "train.lr=0.1", "--set", "train.epochs=2"
    )
    assert changed.returncode == 2
    message = changed.stderr.strip().splitlines()[-1]
    assert "cannot resume, the config differs" in message and "train.lr: 0.003 → 0.1" in message
    assert "train.epochs: 1 → 2" in message and "start a new run" in message

    more_epochs = mlp_config(breast_cancer_csv, epochs=2)
    with pytest.raises(Exception, match=r"train\.epochs: 1 → 2.*resume with force to accept"):
        train(load_config(more_epochs), show_progress=False, resume=run_dir)
    forced = train(load_config(more_epochs), show_progress=False, resume=run_dir, force=True)
    assert [row["epoch"] for row in forced.history] == [1, 2]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/samples_per_second", "epoch/valid_loss"} <= tags
    assert [event.step for event in events.Scalars("epoch/valid_loss")] == [25, 50]  # resumed: no doubles
    environment = json.loads((run_dir / "environment.json").read_text())
    assert {"config_sha256", "git_commit", "versions", "host", "started_at", "finished_at"} <= set(environment)
    assert environment["resumed"][0]["steps"] == 25


def test_a_non_finite_loss_names_the_step_and_the_last_good_checkpoint(tmp_path: Path, breast_cancer_csv: Path) -> None:
    raw = mlp_config(breast_cancer_csv, epochs=2, optimizer="sgd", lr=50.0, checkpoint_every=1)
    raw["task"] = "regression"  # mse on an exploding linear output: inf, then nan
    with pytest.raises(
        TrainingError, match=r"loss is (nan|inf) at epoch \d+ step (\d+); .*last good checkpoint: "
    ) as exc:
        train(load_config(raw), tmp_path / "diverged", show_progress=False)
    step = int(re.search(r"step (\d+)", str(exc.value)).group(1))
    last_good = Path(str(exc.value).rsplit("last good checkpoint: ", 1)[1])
    assert last_good.name == f"step-{step - 1:09d}.safetensors" and last_good.exists()
