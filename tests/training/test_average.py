"""train.average_from: the run scores and keeps the mean of the weights after each step from a share of the
steps on, resumes with it exactly, and tasks whose loops do not average refuse the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_exact_resume import assert_interrupted_run_resumes_bitwise
from torch import nn
from training_runs import gpt_config, mlp_config

from modelforge.config import ConfigError, TrainConfig, load_config
from modelforge.training.average import WeightAverage, scored_model
from modelforge.training.checkpoint import TrainingParts, TrainingState
from modelforge.training.loop import StepInfo, fit
from modelforge.training.recipe import train


def test_the_mean_covers_the_steps_after_the_start_with_batch_norm_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    average = WeightAverage(model, start=2)
    snapshots = []
    for step in range(1, 6):
        model.train()(torch.randn(8, 3))  # moves the running statistics and the batch count
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        average.update(model, step)
        snapshots.append({name: value.clone() for name, value in model.state_dict().items()})
    assert average.count == 3
    for name, mean in average.module.state_dict().items():
        if mean.is_floating_point():
            expected = torch.stack([snapshot[name] for snapshot in snapshots[2:]]).mean(0)
            torch.testing.assert_close(mean, expected)
        else:  # the batch count is the latest step's
            assert torch.equal(mean, snapshots[-1][name])
    assert scored_model(model, average) is average.module
    assert scored_model(model, WeightAverage(model, start=2)) is model  # nothing averaged yet: the model itself
    assert scored_model(model, None) is model


def test_fit_scores_the_average_once_it_begins_and_ends_with_it() -> None:
    torch.manual_seed(0)
    features, target = torch.randn(64, 5), torch.randint(0, 2, (64,))
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.05, average_from=0.5, keep_best=False, threads=1, precision="fp32")
    after_step: list[dict[str, torch.Tensor]] = []
    scored: list[nn.Module] = []

    class Snapshots:
        def after_step(self, parts: TrainingParts, state: TrainingState, step: StepInfo) -> None:
            after_step.append({name: value.clone() for name, value in parts.model.state_dict().items()})

        def after_epoch(self, parts: TrainingParts, state: TrainingState, row: dict[str, Any]) -> None: ...

        def after_training(self, parts: TrainingParts, state: TrainingState) -> None: ...

    def score(module: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, float]:
        scored.append(module)
        with torch.no_grad():
            return {"valid_loss": float(nn.functional.cross_entropy(module(tensors["x"]), tensors["target"]))}

    data = {"x": features, "target": target}

    class Tabular(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.net(batch["x"])

    wrapped = Tabular()
    fit(
        wrapped,
        data,
        data,
        cfg,
        nn.CrossEntropyLoss(),
        lambda module, tensors: score(module.net, tensors),  # type: ignore[union-attr]
        seed=0,
        log_epoch=lambda row: None,
        show_progress=False,
        hooks=[Snapshots()],
    )
    assert len(after_step) == 16  # 4 epochs of 4 batches; the average covers steps 9–16
    assert scored[0] is model and scored[1] is model  # epochs 1–2 end at step 4 and 8: not averaged yet
    assert scored[2] is not model and scored[3] is scored[2]
    for name, value in wrapped.state_dict().items():
        expected = torch.stack([snapshot[name] for snapshot in after_step[8:]]).mean(0)
        torch.testing.assert_close(value, expected)
        assert not torch.equal(value, after_step[-1][name])


def test_a_run_interrupted_while_averaging_resumes_bitwise(tmp_path: Path, breast_cancer_csv: Path) -> None:
    config = load_config(mlp_config(breast_cancer_csv, epochs=3, average_from=0.4))  # averages from step 30 of 75
    reference = assert_interrupted_run_resumes_bitwise(config, tmp_path)
    plain = train(load_config(mlp_config(breast_cancer_csv, epochs=3)), tmp_path / "plain", show_progress=False)
    assert (plain.path / "model.safetensors").read_bytes() != (reference / "model.safetensors").read_bytes()


def test_tasks_whose_loops_do_not_average_refuse_the_key_and_fsdp_refuses_it(
    tmp_path: Path, breast_cancer_csv: Path
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be " * 200)
    language_model = gpt_config(corpus, average_from=0.5)
    with pytest.raises(ConfigError, match=r"train\.average_from: not used by task language-modeling"):
        load_config(language_model)
    with pytest.raises(ConfigError, match="average_from keeps a whole copy of the weights"):
        load_config(mlp_config(breast_cancer_csv, average_from=0.5, strategy="fsdp"))
