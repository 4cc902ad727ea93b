"""Ensembles: `model.members: k` trains k copies of one model side by side and predicts with their mean.

Each member starts from its own random initialization (built one after another from the run's seed)
and learns from its own order of the training rows: the loop (training/loop.py) puts k batches side by
side, one from each member's shuffle, and in training the ensemble hands each member its share and
returns their outputs in the same order, so the loss scores each member on its own rows and no
member's gradient depends on another's output. Different starting points and data orders are what
make members disagree where a single model is unsure (Lakshminarayanan et al. 2017, "Simple and
scalable predictive uncertainty estimation using deep ensembles"). In evaluation every member sees
every row and the output is the mean of their outputs: for classification logits, the normalized
geometric mean of their probabilities; for regression, the mean value. Everything downstream
(scoring, calibration, export, serving) sees one model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class Ensemble(nn.Module):
    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.training:  # the loop's batch: each member's rows one after another
            shares = {name: value.tensor_split(len(self.members)) for name, value in batch.items()}
            parts = [{name: share[i] for name, share in shares.items()} for i in range(len(self.members))]
            return torch.cat([member(part) for member, part in zip(self.members, parts, strict=True)])
        return torch.stack([member(batch) for member in self.members]).mean(0)


class EnsembleLoss(nn.Module):
    """`loss` over all the members' rows, its value their mean loss (what the loop logs) and its gradient
    each member's own loss's, as if it trained alone: the mean's would scale each member's step by
    1/members under SGD."""

    def __init__(self, loss: nn.Module, members: int) -> None:
        super().__init__()
        self.loss = loss
        self.members = members

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mean = self.loss(output, target)
        return mean * self.members - mean.detach() * (self.members - 1)  # type: ignore[no-any-return]


def ensemble_size(model: nn.Module) -> int:
    """How many members `model` trains side by side: 1 unless it is an `Ensemble`."""
    return len(model.members) if isinstance(model, Ensemble) else 1


def ensemble_loss(model: nn.Module, loss: nn.Module) -> nn.Module:
    """The loss that trains `model`: each member's own gradient for an ensemble, `loss` itself otherwise."""
    return EnsembleLoss(loss, len(model.members)) if isinstance(model, Ensemble) else loss


def build_members(build: Callable[..., nn.Module], members: Any, *args: Any, **options: Any) -> nn.Module:
    """`build(*args, **options)` once, or `members` times inside an `Ensemble`."""
    if members == 1:
        return build(*args, **options)
    return Ensemble([build(*args, **options) for _ in range(members)])
