"""mixup (Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization"), `train.mixup: α`.

Each training batch is blended with a shuffled copy of itself, row i with its partner row p(i), by
one weight λ ~ Beta(α, α), and the loss is blended by the same λ: the model is trained between its
examples as well as at them, a regularizer against memorizing the training rows (on FSDD's held-out
speakers it did not pay: docs/site/benchmarks.md). Only float inputs (numbers, images, spectrograms) are blended;
token ids and category indices stay the row's own. The draws come from torch's global generator,
which checkpoints save, so an interrupted run resumes with the same blends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from modelforge.errors import DataError

if TYPE_CHECKING:
    from modelforge.data.preprocess import InputSpec


@dataclass(frozen=True)
class Blend:
    partner: torch.Tensor  # for each row, the row it is blended with
    own: float  # λ: each row's own share of the blend, and of the loss


def check_blendable(alpha: float, spec: InputSpec) -> None:
    """DataError when mixup is asked of a model with no float inputs."""
    if alpha and not (spec.numeric_dim or spec.image_shape or spec.audio_shape):
        kinds = (("categories", spec.category_cardinalities), ("text", spec.text_vocab_size))
        only = " and ".join(name for name, used in kinds if used)
        raise DataError(f"train.mixup: blends numeric, image or audio inputs; this run's are {only}")


def draw_blend(rows: int, alpha: float, device: torch.device) -> Blend:
    """A shuffle of the batch's rows and λ ~ Beta(α, α)."""
    own = float(torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha)).sample())
    return Blend(torch.randperm(rows, device=device), own)


def blend_inputs(batch: dict[str, torch.Tensor], blend: Blend) -> dict[str, torch.Tensor]:
    """Float inputs blended with their partner rows; the other inputs as they are."""
    return {
        name: value * blend.own + value[blend.partner] * (1.0 - blend.own) if value.is_floating_point() else value
        for name, value in batch.items()
    }


def blended_loss(loss_fn: nn.Module, output: torch.Tensor, target: torch.Tensor, blend: Blend) -> torch.Tensor:
    """The loss against each row's own target and its partner's, weighed as the inputs were."""
    return blend.own * loss_fn(output, target) + (1.0 - blend.own) * loss_fn(output, target[blend.partner])
