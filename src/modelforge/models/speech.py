"""Speech recognition acoustic models: log-mel frames in, per-frame character scores out (trained with CTC).

`ctc_rnn`: two convolutions with stride 2 over time each (4× fewer frames, so the recurrent part
runs on 40 ms steps), a bidirectional GRU, and a linear layer to the characters plus the CTC blank
(index 0). Padding frames are packed away, so a clip's scores do not depend on the batch it is in.
The convolutions are 1-D over time with the mel bands as channels (`conv: 1d`), or 2-D over time and
frequency (`conv: 2d`, stride 2 on both axes, as in Deep Speech 2): the same filters slide along the
bands, so a voice whose formants sit a few bands higher meets the same features. `convs_per_stage: 2`
follows each strided 2-D convolution with one of stride 1 (at a quarter and a sixteenth of the input's
cells, so cheap): each frame the GRU reads then sees about twice as far along the bands and in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from modelforge.errors import ConfigError
from modelforge.models.registry import register_model

SUBSAMPLING = 4  # two stride-2 convolutions


@dataclass(frozen=True)
class SpeechSpec:
    """What a speech model is built for: mel bands per frame and the vocabulary (blank included)."""

    n_mels: int
    vocab: int


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after the two stride-2 convolutions (kernel 3, padding 1) of clips of `lengths` frames."""
    for _ in range(2):
        lengths = (lengths - 1) // 2 + 1
    return lengths


class CTCRecurrent(nn.Module):
    """B × n_mels × T features (+ lengths) → B × T/4 × vocab logits (+ their lengths)."""

    def __init__(
        self,
        n_mels: int,
        vocab: int,
        width: int,
        layers: int,
        dropout: float,
        conv: str = "1d",
        channels: int = 32,
        convs_per_stage: int = 1,
    ) -> None:
        super().__init__()
        self.conv = conv
        if conv == "2d":
            bands = (((n_mels - 1) // 2 + 1) - 1) // 2 + 1
            stages: list[nn.Module] = []
            for _ in range(2):
                stages += [nn.Conv2d(1 if not stages else channels, channels, 3, stride=2, padding=1), nn.GELU()]
                for _ in range(convs_per_stage - 1):  # after the stride: a wider view along time and the bands
                    stages += [nn.Conv2d(channels, channels, 3, padding=1), nn.GELU()]
            self.convolutions = nn.Sequential(*stages)
            self.project = nn.Linear(channels * bands, width)
        else:
            self.convolutions = nn.Sequential(
                nn.Conv1d(n_mels, width, kernel_size=3, stride=2, padding=1),
                nn.GELU(),
                nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1),
                nn.GELU(),
            )
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(
            width, width, layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0
        )
        self.output = nn.Linear(2 * width, vocab)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.conv == "2d":  # B × channels × bands/4 × T/4 → B × T/4 × width
            maps = self.convolutions(features[:, None])
            hidden = self.dropout(self.project(maps.flatten(1, 2).transpose(1, 2)))
        else:
            hidden = self.dropout(self.convolutions(features).transpose(1, 2))
        frames = subsampled_lengths(lengths).clamp(min=1, max=hidden.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(hidden, frames.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=hidden.shape[1])
        return self.output(self.dropout(out)), frames


@register_model(
    "ctc_rnn",
    accepts=("speech frames",),
    description="2 strided conv layers + bidirectional GRU + linear, trained with CTC (task speech-recognition)",
)
def ctc_rnn(
    spec: SpeechSpec,
    output_dim: int,
    *,
    width: int = 128,
    layers: int = 2,
    dropout: float = 0.1,
    conv: str = "1d",
    channels: int = 32,
    convs_per_stage: int = 1,
) -> CTCRecurrent:
    """`spec` gives the mel bands; `output_dim` is the vocabulary with the blank (equal to spec's); `conv`:
    1d (mel bands as channels) or 2d (`channels` filters over time and frequency, `convs_per_stage` of
    them at each of the two strides)."""
    if conv not in ("1d", "2d"):
        raise ConfigError(f"model.conv: {conv!r} is not one of 1d, 2d")
    if convs_per_stage < 1 or (convs_per_stage > 1 and conv != "2d"):
        raise ConfigError(f"model.convs_per_stage: {convs_per_stage} needs conv: 2d and is at least 1")
    return CTCRecurrent(spec.n_mels, output_dim, width, layers, dropout, conv, channels, convs_per_stage)
