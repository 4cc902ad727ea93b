"""`train.threads: adaptive` in every loop: the chooser times real steps and keeps the faster thread count."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import modelforge
from modelforge.config import TrainConfig
from modelforge.training.threads import ThreadChooser


def test_the_chooser_keeps_the_thread_count_whose_steps_were_faster() -> None:
    chooser = ThreadChooser((1, 2), period=10, trials=2, chosen=2)
    seconds = {1: 0.01, 2: 0.05}  # one thread is faster here
    for step in range(4):  # the measuring phase alternates 1, 2, 1, 2
        threads = chooser.threads_for(step)
        chooser.record(step, threads, seconds[threads])
    assert chooser.chosen == 1 and all(chooser.threads_for(step) == 1 for step in range(4, 10))
    assert chooser.threads_for(10) == 1 and chooser.threads_for(11) == 2  # the next period measures again


def test_fixed_threads_measure_nothing() -> None:
    chooser = ThreadChooser.for_config(TrainConfig(threads=1), torch.device("cpu"))
    assert not chooser.measures


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: nothing to choose between")
def test_a_supervised_run_with_threads_adaptive_logs_the_count_it_chose(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(400, 4)), columns=list("abcd"))
    frame["y"] = (frame.a > 0).astype(int)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    before, most = torch.get_num_threads(), len(os.sched_getaffinity(0))
    torch.set_num_threads(most)  # earlier tests in this process may have pinned one thread
    config = {
        "data": {"train": str(tmp_path / "rows.csv"), "target": "y"},
        "model": {"type": "mlp", "hidden": [8]},
        "train": {"epochs": 1, "batch_size": 8, "threads": "adaptive"},
    }
    try:
        run = modelforge.train(config, tmp_path / "run")
    finally:
        torch.set_num_threads(before)
    assert run.history[0]["threads"] in (1, most)
