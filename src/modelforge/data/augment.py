"""Train-time image augmentation on whole batches with torch ops (no torchvision).

Random translation (the effect of pad-and-crop), rotation and horizontal flips become one
affine matrix per image, applied in a single `grid_sample` call per batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def image_augmenter(
    crop_padding: int = 0, hflip: bool = False, rotate: float = 0.0
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A batch transform N×C×H×W → N×C×H×W, or None when nothing is asked for."""
    if not (crop_padding or hflip or rotate):
        return None

    def augment(images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        device = images.device
        angle = (torch.rand(n, device=device) * 2 - 1) * math.radians(rotate)
        cos, sin = torch.cos(angle), torch.sin(angle)
        flip = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0) if hflip else torch.ones(n, device=device)
        # shifts in normalized coordinates: one pixel is 2 / size
        shift_x = torch.randint(-crop_padding, crop_padding + 1, (n,), device=device) * (2.0 / width)
        shift_y = torch.randint(-crop_padding, crop_padding + 1, (n,), device=device) * (2.0 / height)
        theta = torch.stack(
            [torch.stack([cos * flip, -sin, shift_x], dim=1), torch.stack([sin * flip, cos, shift_y], dim=1)], dim=1
        )
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        # zero padding in normalized space equals the per-channel mean of the raw images
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    return augment
