"""A small Vision Transformer: patch embedding, class token, pre-norm encoder layers."""

from __future__ import annotations

import torch
from torch import nn

from modelforge.data.preprocess import InputSpec
from modelforge.errors import ConfigError
from modelforge.models.layers import DEFAULT_ENCODED, assemble
from modelforge.models.registry import register_model


class ViTEncoder(nn.Module):
    def __init__(
        self, shape: tuple[int, int, int], patch: int, width: int, depth: int, heads: int, dropout: float
    ) -> None:
        super().__init__()
        channels, height, wide = shape
        if height % patch or wide % patch:
            raise ConfigError(f"model.patch_size: {patch} must divide the image size {height}×{wide}")
        self.patchify = nn.Conv2d(channels, width, patch, patch)
        count = (height // patch) * (wide // patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.positions = nn.Parameter(torch.randn(1, count + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, width * 4, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out_dim = width

    def forward(self, inputs: dict) -> torch.Tensor:
        patches = self.patchify(inputs["image"]).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(patches.shape[0], -1, -1), patches], dim=1) + self.positions
        return self.norm(self.encoder(tokens)[:, 0])


@register_model(
    "vit", accepts=("image",), description="small vision transformer (patch embedding + encoder)", fuses=DEFAULT_ENCODED
)
def vit(
    spec: InputSpec,
    output_dim: int,
    *,
    patch_size: int = 4,
    width: int = 64,
    depth: int = 4,
    heads: int = 4,
    dropout: float = 0.1,
) -> nn.Module:
    if spec.image_shape is None:
        raise ConfigError("model.type vit needs an image feature")
    encoder = ViTEncoder(spec.image_shape, patch_size, width, depth, heads, dropout)
    return assemble(spec, output_dim, {"image": encoder})
