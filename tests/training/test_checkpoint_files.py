"""Checkpoint files: JSON + safetensors without pickle, checksums, atomic writes, retention."""

from __future__ import annotations

import random
import resource

import numpy as np
import pytest
import torch

from modelforge.training.checkpoint import (
    Checkpointer,
    CheckpointError,
    CorruptCheckpoint,
    TrainingParts,
    TrainingState,
    checkpoint_name,
    decode,
    encode,
    list_checkpoints,
    read_checkpoint,
    write_checkpoint,
)
from modelforge.training.distributed import Topology


def test_optimizer_scheduler_and_rng_states_round_trip_exactly() -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    value = {"optimizer": optimizer.state_dict(), "python": random.getstate(), "numpy": np.random.get_state()}
    tensors: dict[str, torch.Tensor] = {}
    restored = decode(encode(value, "", tensors), tensors)
    random.setstate(restored["python"])
    np.random.set_state(restored["numpy"])
    assert restored["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.9)
    assert set(restored["optimizer"]["state"]) == {0, 1}  # integer keys survive JSON
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    fresh.load_state_dict(restored["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_checksum_catches_a_changed_byte_and_truncation(tmp_path) -> None:
    path = tmp_path / checkpoint_name(7)
    write_checkpoint(path, {"state": {"steps": 7}}, {"w": torch.arange(1000, dtype=torch.float32)})
    assert read_checkpoint(path)[0] == {"state": {"steps": 7}}
    data = bytearray(path.read_bytes())
    data[-8] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match="checksum mismatch"):
        read_checkpoint(path)
    path.write_bytes(bytes(data[:200]))
    with pytest.raises(CorruptCheckpoint, match="unreadable"):
        read_checkpoint(path)


def test_a_failed_write_is_a_clear_error_and_the_previous_checkpoint_stays(tmp_path) -> None:
    previous = tmp_path / checkpoint_name(1)
    write_checkpoint(previous, {"state": {"steps": 1}}, {"w": torch.ones(10)})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, hard))  # a full disk, as far as this write can tell
    try:
        with pytest.raises(CheckpointError, match=r"could not write the checkpoint \(File too large\)"):
            write_checkpoint(tmp_path / checkpoint_name(2), {"state": {"steps": 2}}, {"w": torch.ones(100_000)})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list_checkpoints(tmp_path) == [previous]
    assert read_checkpoint(previous)[0] == {"state": {"steps": 1}}
    assert not list(tmp_path.glob(".*.tmp"))


def test_keeps_the_last_k_and_the_best(tmp_path) -> None:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    parts = TrainingParts(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0))
    checkpointer = Checkpointer(tmp_path, Topology(device=torch.device("cpu")), every_steps=1, keep=2)
    state = TrainingState()
    for step in range(1, 7):
        state.steps = step
        checkpointer.save(parts, state, best=step == 2)
    checkpointer.close()  # waits for the background write
    names = [path.name for path in list_checkpoints(tmp_path)]
    assert names == [checkpoint_name(6), checkpoint_name(5), checkpoint_name(2)]
    assert read_checkpoint(tmp_path / checkpoint_name(6))[0]["best_checkpoint"] == checkpoint_name(2)
