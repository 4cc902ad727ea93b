"""`model.members: k`: k models trained side by side, each on its own loss, predicting with their mean."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from test_exact_resume import assert_interrupted_run_resumes_bitwise
from torch import nn
from training_runs import gpt_config, mlp_config

from modelforge.api import load_run
from modelforge.config import ConfigError, TrainConfig, load_config
from modelforge.export.onnx import export_supervised_run
from modelforge.models.ensemble import Ensemble, ensemble_loss
from modelforge.models.registry import build_model
from modelforge.training.loop import fit


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 3)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.layer(batch["x"])  # type: ignore[no-any-return]


def test_members_start_apart_predict_their_mean_and_each_learns_on_its_own_rows() -> None:
    torch.manual_seed(0)
    ensemble = Ensemble([Head(), Head(), Head()])
    first, second = (member.layer.weight for member in ensemble.members[:2])
    assert not torch.equal(first, second)
    batch, target = {"x": torch.randn(5, 4)}, torch.tensor([0, 1, 2, 0, 1])
    ensemble.eval()
    expected = torch.stack([member(batch) for member in ensemble.members]).mean(0)
    torch.testing.assert_close(ensemble(batch), expected)
    # in evaluation the ensemble's loss scores the mean output as any model's
    scored = ensemble_loss(ensemble, nn.CrossEntropyLoss())(ensemble(batch), target)
    torch.testing.assert_close(scored, nn.functional.cross_entropy(expected, target))

    # training: the loop's batch holds each member's rows one after another (three rows each here)
    alone = [copy.deepcopy(member) for member in ensemble.members]
    rows, targets = torch.randn(9, 4), torch.tensor([0, 1, 2, 2, 1, 0, 1, 1, 2])
    ensemble.train()
    output = ensemble({"x": rows})
    assert output.shape == (9, 3)
    loss = ensemble_loss(ensemble, nn.CrossEntropyLoss())(output, targets)
    own_losses = [
        nn.functional.cross_entropy(member({"x": rows[3 * i : 3 * i + 3]}), targets[3 * i : 3 * i + 3])
        for i, member in enumerate(alone)
    ]
    torch.testing.assert_close(loss, torch.stack(own_losses).mean())
    loss.backward()
    for member, single, own in zip(ensemble.members, alone, own_losses, strict=True):
        own.backward()  # each member's gradient is its own rows' loss's, as if it trained alone
        torch.testing.assert_close(member.layer.weight.grad, single.layer.weight.grad)


class RowRecorder(nn.Module):
    """Predicts nothing useful; records which rows (their ids in column 0) it trained on."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2)
        self.seen: list[int] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.training:
            self.seen += batch["x"][:, 0].long().tolist()
        return self.layer(batch["x"])  # type: ignore[no-any-return]


def no_scores(model: nn.Module, data: dict[str, torch.Tensor]) -> dict[str, float]:
    return {}


def ignore(row: dict[str, object]) -> None:
    pass


def test_the_loop_gives_each_member_every_row_once_an_epoch_in_its_own_order() -> None:
    ensemble = Ensemble([RowRecorder(), RowRecorder(), RowRecorder()])
    rows = torch.stack([torch.arange(40.0), torch.zeros(40)], dim=1)
    train_set = {"x": rows, "target": torch.arange(40) % 2}
    config = TrainConfig(epochs=2, batch_size=8, threads=1, precision="fp32")
    fit(ensemble, train_set, None, config, nn.CrossEntropyLoss(), no_scores, seed=0, log_epoch=ignore)
    orders = [member.seen for member in ensemble.members]
    for order in orders:
        assert len(order) == 80
        assert sorted(order[:40]) == list(range(40)) and sorted(order[40:]) == list(range(40))
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]
    # the first member takes the order a single model of the same seed would
    single = RowRecorder()
    fit(single, train_set, None, config, nn.CrossEntropyLoss(), no_scores, seed=0, log_epoch=ignore)
    assert single.seen == orders[0]


def test_an_ensemble_run_resumes_bitwise_exports_and_predicts_with_the_members_mean(
    tmp_path: Path, breast_cancer_csv: Path
) -> None:
    raw = mlp_config(breast_cancer_csv, epochs=3)
    raw["model"]["members"] = 3
    config = load_config(raw)
    run = load_run(assert_interrupted_run_resumes_bitwise(config, tmp_path))
    assert run.model_info["options"]["members"] == 3
    assert isinstance(run.model, Ensemble) and len(run.model.members) == 3
    assert run.metrics["accuracy"] > 0.85
    rebuilt = build_model("mlp", run.preprocessor.input_spec(), run.model_info["output_dim"], {"hidden": [64, 32]})
    assert sum(p.numel() for p in run.model.parameters()) == 3 * sum(p.numel() for p in rebuilt.parameters())
    parity = export_supervised_run(run.path, run.path / "model.onnx")
    assert parity.ok


@pytest.mark.parametrize("members", [0, "two", True, 1.5])
def test_members_must_be_a_whole_number(breast_cancer_csv: Path, members: object) -> None:
    raw = mlp_config(breast_cancer_csv)
    raw["model"]["members"] = members
    with pytest.raises(ConfigError, match=r"^model\.members: a whole number of models to ensemble, at least 1"):
        load_config(raw)


def test_tasks_with_loops_of_their_own_refuse_members(shakespeare_txt: Path) -> None:
    raw = gpt_config(shakespeare_txt)
    raw["model"]["members"] = 2
    with pytest.raises(ConfigError, match=r"model\.members: read by tasks classification, multilabel, regression, "):
        load_config(raw)
