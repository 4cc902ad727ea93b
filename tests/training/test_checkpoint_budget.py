"""Epoch-end checkpoints keep within train.checkpoint_budget (a share of training time); the end
of training always has a checkpoint, and a run resumes exactly from whichever ones were kept."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from training_runs import mlp_config

from modelforge.config import load_config
from modelforge.training.checkpoint import Checkpointer, TrainingParts, TrainingState, list_checkpoints
from modelforge.training.distributed import Topology
from modelforge.training.recipe import train


def saved_steps(directory: Path) -> list[int]:
    return sorted(int(path.stem.split("-")[1]) for path in list_checkpoints(directory))


def test_budget_one_saves_every_epoch_and_zero_only_the_last(tmp_path: Path, breast_cancer_csv: Path) -> None:
    every = train(load_config(mlp_config(breast_cancer_csv, checkpoint_budget=1.0, keep_checkpoints=9)), tmp_path / "a")
    steps_per_epoch = every.history[0]["step"]
    assert saved_steps(every.path / "checkpoints") == [steps_per_epoch * epoch for epoch in range(1, 7)]

    last = train(load_config(mlp_config(breast_cancer_csv, checkpoint_budget=0.0, keep_checkpoints=9)), tmp_path / "b")
    assert saved_steps(last.path / "checkpoints") == [6 * steps_per_epoch]
    assert (every.path / "model.safetensors").read_bytes() == (last.path / "model.safetensors").read_bytes()


def test_an_epoch_end_save_waits_until_its_cost_fits_the_budget(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 2)
    parts = TrainingParts(model, torch.optim.SGD(model.parameters(), lr=0.1), None)
    checkpointer = Checkpointer(tmp_path, Topology(device=torch.device("cpu")), keep=9, budget=0.05)
    state = TrainingState()
    for epoch in range(1, 4):
        state.steps = epoch
        checkpointer.after_epoch(parts, state, {"epoch": epoch})
    checkpointer.flush()
    assert saved_steps(tmp_path) == [1]  # the first save; the next two epochs came too soon after it
    cost = 2 * (checkpointer._blocked + checkpointer._written)  # counted twice (see Checkpointer)
    time.sleep(cost / 0.05 + 0.01)  # training time has paid for the next save
    state.steps = 4
    checkpointer.after_epoch(parts, state, {"epoch": 4})
    state.steps = 5
    checkpointer.after_training(parts, state)  # the end of training always saves
    checkpointer.after_training(parts, state)  # ... once
    checkpointer.close()
    assert saved_steps(tmp_path) == [1, 4, 5]
