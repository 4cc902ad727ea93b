"""Box-aware augmentation of letterboxed images: random scale with crop/pad and translation, horizontal
flip, brightness/contrast jitter. The boxes move with the pixels; a box cropped to less than
MIN_VISIBLE of its area (or narrower than MIN_SIDE pixels) is dropped with its label.

Every draw comes from the `generator` passed in, so a seeded run augments identically when resumed.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from modelforge.config import DetectionAugment
from modelforge.detection.data import PAD_VALUE

MIN_VISIBLE = 0.35  # share of a box's area that must stay inside the image for it to be kept
MIN_SIDE = 2.0  # pixels


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))


def scale_translate(
    image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, scale: float, dx: float, dy: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The image zoomed by `scale` about its centre and shifted by (dx, dy) pixels on a same-size grey
    canvas; boxes follow, clipped to the canvas, those mostly cut away dropped."""
    _, height, width = image.shape
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
    left, top = round((width - new_w) / 2 + dx), round((height - new_h) / 2 + dy)
    canvas = torch.full_like(image, PAD_VALUE / 255.0)
    src_x, src_y = max(0, -left), max(0, -top)
    dst_x, dst_y = max(0, left), max(0, top)
    w, h = min(new_w - src_x, width - dst_x), min(new_h - src_y, height - dst_y)
    if w > 0 and h > 0:
        canvas[:, dst_y : dst_y + h, dst_x : dst_x + w] = resized[:, src_y : src_y + h, src_x : src_x + w]
    sx, sy = new_w / width, new_h / height
    moved = boxes * torch.tensor([sx, sy, sx, sy]) + torch.tensor([left, top, left, top], dtype=boxes.dtype)
    clipped = torch.stack(
        [
            moved[:, 0].clamp(0, width),
            moved[:, 1].clamp(0, height),
            moved[:, 2].clamp(0, width),
            moved[:, 3].clamp(0, height),
        ],
        dim=1,
    )
    area = ((moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])).clamp(min=1e-9)
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (visible / area >= MIN_VISIBLE) & (clipped[:, 2] - clipped[:, 0] >= MIN_SIDE)
    keep &= clipped[:, 3] - clipped[:, 1] >= MIN_SIDE
    return canvas, clipped[keep], labels[keep]


def horizontal_flip(image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    width = image.shape[-1]
    return image.flip(-1), torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def augment(
    image: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    settings: DetectionAugment,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training image (C × H × W floats in [0, 1]) with its x1 y1 x2 y2 boxes and labels, augmented."""
    _, height, width = image.shape
    if settings.scale or settings.translate:
        scale = _uniform(generator, 1 - settings.scale, 1 + settings.scale)
        dx = _uniform(generator, -settings.translate, settings.translate) * width
        dy = _uniform(generator, -settings.translate, settings.translate) * height
        image, boxes, labels = scale_translate(image, boxes, labels, scale, dx, dy)
    if settings.flip and torch.rand((), generator=generator) < 0.5:
        image, boxes = horizontal_flip(image, boxes)
    if settings.jitter:
        brightness = _uniform(generator, -settings.jitter, settings.jitter) / 2
        contrast = _uniform(generator, 1 - settings.jitter, 1 + settings.jitter)
        mean = image.mean()
        image = ((image - mean) * contrast + mean + brightness).clamp(0, 1)
    return image, boxes, labels
