"""Weight averaging (`train.average_from`): stochastic weight averaging, Izmailov et al. 2018.

From a share of the run's optimizer steps on, the uniform mean of the weights after every step is kept
beside the model; each epoch scores the mean instead of the last step's weights, and the run ends with it
(or with the best epoch's mean under train.keep_best). A mean over the low-learning-rate end of training
sits in a flatter region of the loss than any one step, which holds up better on data unlike the
training set (a new speaker, a new microphone: SWAD, Cha et al. 2021).

Floating-point buffers (batch-norm running statistics) are averaged like the weights, so the mean's
statistics follow its weights; integer buffers (batch counts) are the latest step's.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from modelforge.config import TrainConfig


class WeightAverage:
    """The running mean of a model's weights over the optimizer steps after `start`."""

    def __init__(self, model: nn.Module, start: int) -> None:
        self.start = start  # steps taken before the first one averaged
        self.count = 0  # steps averaged so far
        self.module = copy.deepcopy(model).requires_grad_(False)

    @classmethod
    def for_config(cls, cfg: TrainConfig, model: nn.Module, total_steps: int) -> WeightAverage | None:
        """The average train.average_from asks for over a run of `total_steps` steps, else None."""
        if cfg.average_from is None:
            return None
        return cls(model, min(math.floor(cfg.average_from * total_steps), max(total_steps - 1, 0)))

    @torch.no_grad()
    def update(self, model: nn.Module, steps: int) -> None:
        """Fold in the weights after optimizer step number `steps` (1-based), once past `start`."""
        if steps <= self.start:
            return
        self.count += 1
        current = model.state_dict()
        for name, mean in self.module.state_dict().items():
            if mean.is_floating_point() and self.count > 1:
                mean.lerp_(current[name].to(mean.dtype), 1.0 / self.count)
            else:  # the first step averaged is copied exactly (lerp by 1 is not bit-exact)
                mean.copy_(current[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """For a checkpoint: the mean's tensors and the count (a tensor, so it travels with them)."""
        return {**self.module.state_dict(), "__count__": torch.tensor(self.count, dtype=torch.int64)}

    def load_state_dict(self, saved: dict[str, torch.Tensor]) -> None:
        tensors = dict(saved)
        self.count = int(tensors.pop("__count__"))
        self.module.load_state_dict(tensors)


def scored_model(model: nn.Module, average: WeightAverage | None) -> nn.Module:
    """The module an epoch scores and keep_best copies: the weight average once a step is averaged, else
    the model itself."""
    return average.module if average is not None and average.count else model
