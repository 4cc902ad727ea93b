"""`train.precision: auto` / `train.threads: auto`: a probe times the model's own steps, leaves no trace,
caches its choice per machine and model, and the run records what it chose and why."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from modelforge.config import TrainConfig
from modelforge.training import probe
from modelforge.training.probe import AutoChoice, _decide, choose_settings

CPU = torch.device("cpu")


def test_bf16_must_beat_fp32_by_the_margin_and_the_fastest_thread_count_wins() -> None:
    close = _decide({("fp32", 1): 10.0, ("fp32", 2): 6.0, ("bf16", 1): 9.0, ("bf16", 2): 5.8}, CPU)
    assert (close.precision, close.threads) == ("fp32", 2)  # bf16 only 3 % faster: not worth its rounding
    clear = _decide({("fp32", 1): 10.0, ("fp32", 2): 6.0, ("bf16", 1): 9.0, ("bf16", 2): 3.0}, CPU)
    assert (clear.precision, clear.threads) == ("bf16", 2)
    assert "3.0 ms/step" in clear.reason and clear.probe_ms["fp32/2"] == 6.0
    busy = _decide({("fp32", 1): 4.0, ("fp32", 2): 90.0}, CPU)  # a neighbour holds the other core
    assert (busy.precision, busy.threads) == ("fp32", 1)


def small_model() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.ReLU(), nn.Linear(16, 3))


def test_the_probe_leaves_weights_statistics_gradients_mode_and_random_streams_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(probe.CACHE_ENV, str(tmp_path))
    torch.manual_seed(0)
    model = small_model().eval()
    inputs, target = torch.randn(32, 6), torch.randint(0, 3, (32,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threads = torch.get_num_threads()
    state = torch.get_rng_state()
    choice = choose_settings(
        TrainConfig(), model, CPU, lambda: nn.functional.cross_entropy(model(inputs), target), "32x6"
    )
    assert choice is not None and choice.precision in ("fp32", "bf16") and choice.probe_ms
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm's running stats too
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads


def test_the_choice_is_cached_per_machine_and_model_and_fixed_settings_skip_the_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(probe.CACHE_ENV, str(tmp_path))
    model, inputs = small_model(), torch.randn(16, 6)
    calls = []

    def loss() -> torch.Tensor:
        calls.append(1)
        return model(inputs).square().mean()

    first = choose_settings(TrainConfig(), model, CPU, loss, "16x6")
    probed = len(calls)
    again = choose_settings(TrainConfig(), model, CPU, loss, "16x6")
    assert first is not None and again is not None and probed >= 4 and len(calls) == probed  # no second probe
    assert again.cached and (again.precision, again.threads) == (first.precision, first.threads)
    assert len(json.loads((tmp_path / "auto.json").read_text())) == 1
    wider = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))  # another model: probed afresh
    choose_settings(TrainConfig(), wider, CPU, lambda: wider(inputs).square().mean(), "16x6")
    assert len(json.loads((tmp_path / "auto.json").read_text())) == 2
    assert choose_settings(TrainConfig(precision="fp32", threads=1), model, CPU, loss, "16x6") is None
    recorded = AutoChoice("bf16", 1, "recorded earlier").to_json()  # a resumed run keeps its first choice
    resumed = choose_settings(TrainConfig(), model, CPU, loss, "16x6", recorded)
    assert resumed is not None and (resumed.precision, resumed.threads) == ("bf16", 1)


def test_a_run_with_default_settings_records_what_auto_chose_and_keeps_auto_in_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(probe.CACHE_ENV, str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    frame["y"] = (frame.a > 0).astype(int)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    config = {
        "data": {"train": str(tmp_path / "rows.csv"), "target": "y"},
        "model": {"type": "mlp", "hidden": [8]},
        "train": {"epochs": 5, "batch_size": 16, "lr": 0.01},
    }
    from modelforge.config import load_config
    from modelforge.training.recipe import train

    during = []  # a run stopped mid-training must already hold the choice its resumption reuses
    run = train(
        load_config(config),
        tmp_path / "run",
        on_epoch=lambda row: during.append(json.loads((tmp_path / "run" / "environment.json").read_text())),
    )
    assert during and all(seen.get("auto") == during[0]["auto"] for seen in during)
    auto = json.loads((run.path / "environment.json").read_text())["auto"]
    assert auto == during[0]["auto"]
    assert auto["precision"] in ("fp32", "bf16") and auto["reason"]
    most = len(os.sched_getaffinity(0))
    assert auto["threads"] in {1, most}
    assert "precision: auto" in (run.path / "config.yaml").read_text()
    assert run.metrics["accuracy"] > 0.5


def test_a_damaged_cache_is_probed_anew_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(probe.CACHE_ENV, str(tmp_path))
    model, inputs = small_model(), torch.randn(16, 6)
    first = choose_settings(TrainConfig(), model, CPU, lambda: model(inputs).square().mean(), "16x6")
    assert first is not None
    cache = tmp_path / "auto.json"
    (key,) = json.loads(cache.read_text())
    for damaged in ({key: "bf16"}, {key: {"precision": "fp16"}}, {key: {"precision": "bf16", "threads": "two"}}):
        cache.write_text(json.dumps(damaged))
        again = choose_settings(TrainConfig(), model, CPU, lambda: model(inputs).square().mean(), "16x6")
        assert again is not None and not again.cached and again.probe_ms
    cache.write_text("{not json")
    assert choose_settings(TrainConfig(), model, CPU, lambda: model(inputs).square().mean(), "16x6") is not None
    recorded = {"precision": "bf16", "threads": "many"}  # a hand-edited environment.json: probed instead
    resumed = choose_settings(TrainConfig(), model, CPU, lambda: model(inputs).square().mean(), "16x6", recorded)
    assert resumed is not None and resumed.threads != "many"
