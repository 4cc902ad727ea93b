"""Convolutional network: conv → norm → activation blocks with pooling, then global pooling."""

from __future__ import annotations

from torch import nn

from modelforge.data.preprocess import InputSpec
from modelforge.errors import ConfigError
from modelforge.models.layers import DEFAULT_ENCODED, assemble
from modelforge.models.layers import activation as make_activation
from modelforge.models.registry import register_model


class ConvEncoder(nn.Module):
    def __init__(
        self, in_channels: int, channels: list[int], convs_per_block: int, act: str, dropout: float, height: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = height
        for i, width in enumerate(channels):
            for _ in range(convs_per_block):
                layers += [
                    nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    make_activation(act),
                ]
                in_channels = width
            if i < len(channels) - 1 and size >= 4:  # pool between blocks while the map is large enough
                layers.append(nn.MaxPool2d(2))
                size //= 2
            if dropout:
                layers.append(nn.Dropout2d(dropout))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.out_dim = in_channels

    def forward(self, inputs: dict) -> object:
        return self.body(inputs["image"])


@register_model("cnn", accepts=("image",), description="conv + pooling blocks for small images", fuses=DEFAULT_ENCODED)
def cnn(
    spec: InputSpec,
    output_dim: int,
    *,
    channels: list[int] | None = None,
    convs_per_block: int = 2,
    activation: str = "relu",
    dropout: float = 0.1,
    head_dropout: float = 0.2,
    init: str = "he",
) -> nn.Module:
    if spec.image_shape is None:
        raise ConfigError("model.type cnn needs an image feature")
    encoder = ConvEncoder(
        spec.image_shape[0], list(channels or [32, 64, 128]), convs_per_block, activation, dropout, spec.image_shape[1]
    )
    return assemble(spec, output_dim, {"image": encoder}, dropout=head_dropout, init=init)
