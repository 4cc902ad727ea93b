"""Audio classifiers over spectrograms (input key `audio`: N×1×bands×frames).

- `audio_cnn`: conv → norm → activation blocks with pooling on the band×frame map, then
  global average pooling (the usual keyword-spotting CNN).
- `audio_transformer`: each frame's bands become a token; sinusoidal positions, a
  transformer encoder, mean pooling over frames.
"""

from __future__ import annotations

import torch
from torch import nn

from modelforge.data.preprocess import InputSpec
from modelforge.errors import ConfigError
from modelforge.models.layers import DEFAULT_ENCODED, AdaptiveAvgPool2d, assemble, sinusoidal_positions
from modelforge.models.layers import activation as make_activation
from modelforge.models.registry import register_model


class SpectrogramConvEncoder(nn.Module):
    def __init__(
        self,
        channels: list[int],
        convs_per_block: int,
        act: str,
        dropout: float,
        bands: int,
        frames: int,
        pooled: tuple[int, int],
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, height, width = 1, bands, frames
        for out_channels in channels:
            for index in range(convs_per_block):
                layers += [
                    nn.Conv2d(in_channels if index == 0 else out_channels, out_channels, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out_channels),
                    make_activation(act),
                ]
            pool = (2 if height >= 4 else 1, 2 if width >= 4 else 1)
            if pool != (1, 1):
                layers.append(nn.MaxPool2d(pool))
                height, width = height // pool[0], width // pool[1]
            if dropout:
                layers.append(nn.Dropout2d(dropout))
            in_channels = out_channels
        # a coarse bands×time map, not one global average: word identity depends on the order of sounds
        layers += [AdaptiveAvgPool2d(pooled), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.out_dim = in_channels * pooled[0] * pooled[1]

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.body(inputs["audio"])


class FrameTransformerEncoder(nn.Module):
    def __init__(self, bands: int, frames: int, width: int, depth: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.project = nn.Linear(bands, width)
        self.register_buffer("positions", sinusoidal_positions(frames, width), persistent=False)
        layer = nn.TransformerEncoderLayer(
            width, heads, width * 4, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = width

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        frames = inputs["audio"][:, 0].transpose(1, 2)  # N × frames × bands
        x = self.project(frames) + self.positions[: frames.shape[1]]
        return self.norm(self.encoder(self.dropout(x))).mean(dim=1)


def _audio_shape(spec: InputSpec, name: str) -> tuple[int, int]:
    if spec.audio_shape is None:
        raise ConfigError(f"model.type {name} needs an audio feature (features: [{{name: ..., type: audio}}])")
    return spec.audio_shape[1], spec.audio_shape[2]


@register_model(
    "audio_cnn", accepts=("audio",), description="conv blocks over log-mel/MFCC spectrograms", fuses=DEFAULT_ENCODED
)
def audio_cnn(
    spec: InputSpec,
    output_dim: int,
    *,
    channels: list[int] | None = None,
    convs_per_block: int = 1,
    pooled: list[int] | None = None,
    activation: str = "relu",
    dropout: float = 0.1,
    head_dropout: float = 0.3,
    init: str = "he",
) -> nn.Module:
    bands, frames = _audio_shape(spec, "audio_cnn")
    grid: tuple[int, int] = tuple(pooled or [2, 4])  # type: ignore[assignment]
    if len(grid) != 2:
        raise ConfigError(f"model.pooled: expected [bands, frames] of the pooled map, got {pooled}")
    encoder = SpectrogramConvEncoder(
        list(channels or [16, 32, 64]), convs_per_block, activation, dropout, bands, frames, grid
    )
    return assemble(spec, output_dim, {"audio": encoder}, dropout=head_dropout, init=init)


@register_model(
    "audio_transformer",
    accepts=("audio",),
    description="transformer encoder over spectrogram frames",
    fuses=DEFAULT_ENCODED,
)
def audio_transformer(
    spec: InputSpec, output_dim: int, *, width: int = 128, depth: int = 2, heads: int = 4, dropout: float = 0.1
) -> nn.Module:
    bands, frames = _audio_shape(spec, "audio_transformer")
    if width % heads:
        raise ConfigError(f"model.width: {width} must be divisible by model.heads ({heads})")
    encoder = FrameTransformerEncoder(bands, frames, width, depth, heads, dropout)
    return assemble(spec, output_dim, {"audio": encoder}, dropout=dropout)
