"""train.mixup: float inputs and the loss are blended by one λ per batch, the run resumes with the same
blends, and runs with nothing to blend (or loops that do not blend) refuse the key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from test_exact_resume import assert_interrupted_run_resumes_bitwise
from torch import nn
from training_runs import gpt_config, mlp_config

from modelforge.api import load_run
from modelforge.config import ConfigError, load_config
from modelforge.errors import DataError
from modelforge.training.mixup import blend_inputs, blended_loss, draw_blend
from modelforge.training.recipe import train


def test_float_inputs_and_the_loss_blend_by_one_share_and_indices_stay() -> None:
    torch.manual_seed(0)
    blend = draw_blend(6, 0.4, torch.device("cpu"))
    assert 0.0 < blend.own < 1.0
    assert sorted(blend.partner.tolist()) == list(range(6))
    batch = {"numeric": torch.randn(6, 3), "category": torch.randint(0, 5, (6, 2)), "audio": torch.randn(6, 1, 4, 7)}
    blended = blend_inputs(batch, blend)
    for name in ("numeric", "audio"):
        partner = batch[name][blend.partner]
        torch.testing.assert_close(blended[name], blend.own * batch[name] + (1 - blend.own) * partner)
    assert torch.equal(blended["category"], batch["category"])
    output, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    expected = blend.own * nn.functional.cross_entropy(output, target) + (1 - blend.own) * nn.functional.cross_entropy(
        output, target[blend.partner]
    )
    torch.testing.assert_close(blended_loss(nn.CrossEntropyLoss(), output, target, blend), expected)


def test_a_mixup_run_interrupted_resumes_bitwise_and_differs_from_a_plain_one(
    tmp_path: Path, breast_cancer_csv: Path
) -> None:
    config = load_config(mlp_config(breast_cancer_csv, epochs=3, mixup=0.4))
    reference = load_run(assert_interrupted_run_resumes_bitwise(config, tmp_path))
    plain = train(load_config(mlp_config(breast_cancer_csv, epochs=3)), tmp_path / "plain", show_progress=False)
    # blended rows are harder to fit: the training loss stays above the plain run's
    assert reference.history[-1]["train_loss"] > plain.history[-1]["train_loss"]
    assert reference.metrics["accuracy"] > 0.85


def test_runs_with_nothing_to_blend_and_loops_that_do_not_blend_refuse_the_key(tmp_path: Path) -> None:
    reviews = tmp_path / "reviews.csv"
    words = ["good", "bad", "film", "plot", "cast", "dull", "great", "slow", "fine", "loud"]
    texts = [f"{words[i % 10]} {words[(i * 3) % 10]} {words[(i * 7) % 10]} take {i}" for i in range(40)]
    pd.DataFrame({"review": texts, "label": [i % 2 for i in range(40)]}).to_csv(reviews, index=False)
    config = load_config(
        {
            "task": "classification",
            "data": {"train": str(reviews), "target": "label", "split": {"valid": 0.25}},
            "model": {"type": "mlp"},
            "train": {"epochs": 1, "mixup": 0.4, "threads": 1},
        }
    )
    with pytest.raises(DataError, match=r"train\.mixup: blends numeric, image or audio inputs; this run's are text"):
        train(config, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be " * 200)
    with pytest.raises(ConfigError, match=r"train\.mixup: not used by task language-modeling"):
        load_config(gpt_config(corpus, mixup=0.4))
