"""Training for imbalance: focal loss, class-balanced epochs (train.sampling), and runs that use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from skewed_data import skewed_config, train_run

from modelforge.data.split import balanced_order, balanced_rows
from modelforge.training.optim import LOSSES


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_discounts_easy_rows() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(64, 3) * 3, torch.randint(0, 3, (64,))
    focal = LOSSES.get("focal")()
    cross_entropy = torch.nn.functional.cross_entropy(logits, target)
    focal.gamma = 0.0
    assert focal(logits, target) == pytest.approx(float(cross_entropy), rel=1e-6)
    focal.gamma = 2.0
    assert focal(logits, target) < cross_entropy
    weight = torch.tensor([1.0, 2.0, 3.0])
    weighted = LOSSES.get("focal")(weight=weight)
    weighted.gamma = 0.0
    expected = torch.nn.functional.cross_entropy(logits, target, weight=weight)
    assert weighted(logits, target) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize(("sampling", "per_class"), [("oversample", 90), ("undersample", 10)])
def test_balanced_epochs_draw_every_class_equally_and_replay(sampling: str, per_class: int) -> None:
    target = torch.tensor([0] * 90 + [1] * 10)
    order = balanced_order(target, sampling, seed=3, epoch=1)
    assert len(order) == balanced_rows(target, sampling) == 2 * per_class
    assert torch.bincount(target[order]).tolist() == [per_class, per_class]
    if sampling == "oversample":
        assert set(order.tolist()) == set(range(100))  # every row at least once
    assert torch.equal(order, balanced_order(target, sampling, seed=3, epoch=1))
    assert not torch.equal(order, balanced_order(target, sampling, seed=3, epoch=2))


def test_focal_loss_and_oversampling_train_a_run(skewed_csv: Path, tmp_path: Path) -> None:
    config = skewed_config(skewed_csv, decision={"optimize": "f1", "positive": "fraud"})
    config["train"].update(loss="focal", sampling="oversample", epochs=4)
    run = train_run(config, tmp_path / "run")
    metrics = json.loads((run / "eval.json").read_text())
    assert metrics["average_precision"] > 0.5
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert history[0]["step"] > 2400 * 0.5 * 2 * 0.92 / 64 - 1  # an oversampled epoch: about 2 × the majority rows


def test_sampling_is_refused_for_regression(tmp_path: Path) -> None:
    from modelforge.config import load_config
    from modelforge.errors import ConfigError

    raw = {"task": "regression", "data": {"train": "x.csv", "target": "y"}, "train": {"sampling": "oversample"}}
    with pytest.raises(ConfigError, match=r"train.sampling: not used by task regression"):
        load_config(raw)
