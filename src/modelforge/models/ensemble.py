"""Ensembles: `model.members: k` trains k copies of one model side by side and predicts with their mean.

Each member starts from its own random initialization (built one after another from the run's seed)
and learns on its own loss: in training the members' outputs come back one after another along the
batch axis and `EnsembleLoss` scores each against the batch's targets, so no member's gradient
depends on another's output (the members see the same batches; their starting points are what
differs, the main source of an ensemble's diversity: Fort et al. 2019, "Deep ensembles: a loss
landscape perspective"). In evaluation the output is the mean of the members' outputs: for
classification logits, the normalized geometric mean of their probabilities; for regression, the
mean value. Everything downstream (scoring, calibration, export, serving) sees one model.
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
        outputs = [member(batch) for member in self.members]
        if self.training:
            return torch.cat(outputs)  # member after member; EnsembleLoss repeats the targets to match
        return torch.stack(outputs).mean(0)


class EnsembleLoss(nn.Module):
    """`loss` averaged over the members: their training outputs stacked along the batch axis are
    scored against the targets repeated once per member. Outputs as long as the targets (an
    ensemble in evaluation) are scored as they are."""

    def __init__(self, loss: nn.Module, members: int) -> None:
        super().__init__()
        self.loss = loss
        self.members = members

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if len(output) == len(target):
            return self.loss(output, target)  # type: ignore[no-any-return]
        if len(output) != self.members * len(target):
            raise ValueError(f"{len(output)} outputs for {len(target)} targets and {self.members} members")
        mean = self.loss(output, target.repeat(self.members, *[1] * (target.dim() - 1)))
        # the value is the members' mean loss (what the loop logs); the gradient is each member's own
        # loss's, as if it trained alone (the mean's would scale every member's step by 1/members under SGD)
        return mean * self.members - mean.detach() * (self.members - 1)  # type: ignore[no-any-return]


def ensemble_loss(model: nn.Module, loss: nn.Module) -> nn.Module:
    """The loss that trains `model`: per member for an ensemble, `loss` itself otherwise."""
    if isinstance(model, Ensemble) and not isinstance(loss, EnsembleLoss):
        return EnsembleLoss(loss, len(model.members))
    return loss


def build_members(build: Callable[..., nn.Module], members: Any, *args: Any, **options: Any) -> nn.Module:
    """`build(*args, **options)` once, or `members` times inside an `Ensemble`."""
    if members == 1:
        return build(*args, **options)
    return Ensemble([build(*args, **options) for _ in range(members)])
