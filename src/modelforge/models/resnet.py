"""A small ResNet (basic blocks, identity shortcuts) for 28–64 px images."""

from __future__ import annotations

import torch
from torch import nn

from modelforge.data.preprocess import InputSpec
from modelforge.errors import ConfigError
from modelforge.models.layers import DEFAULT_ENCODED, assemble
from modelforge.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetEncoder(nn.Module):
    def __init__(self, in_channels: int, widths: list[int], blocks_per_stage: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        stages: list[nn.Module] = []
        current = widths[0]
        for i, width in enumerate(widths):
            for j in range(blocks_per_stage):
                stages.append(BasicBlock(current, width, 2 if (j == 0 and i > 0) else 1))
                current = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = current

    def forward(self, inputs: dict) -> torch.Tensor:
        return self.pool(self.stages(self.stem(inputs["image"])))


@register_model(
    "resnet", accepts=("image",), description="small residual network for 28–64 px images", fuses=DEFAULT_ENCODED
)
def resnet(
    spec: InputSpec,
    output_dim: int,
    *,
    widths: list[int] | None = None,
    blocks_per_stage: int = 2,
    head_dropout: float = 0.0,
) -> nn.Module:
    if spec.image_shape is None:
        raise ConfigError("model.type resnet needs an image feature")
    encoder = ResNetEncoder(spec.image_shape[0], list(widths or [32, 64, 128]), blocks_per_stage)
    return assemble(spec, output_dim, {"image": encoder}, dropout=head_dropout)
