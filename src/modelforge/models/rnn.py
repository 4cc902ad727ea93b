"""Recurrent text encoders: (bi)LSTM and GRU over token embeddings, max+mean pooled."""

from __future__ import annotations

import torch
from torch import nn

from modelforge.data.preprocess import InputSpec
from modelforge.errors import ConfigError
from modelforge.models.layers import DEFAULT_ENCODED, assemble, trim_padding
from modelforge.models.registry import register_model


class RecurrentEncoder(nn.Module):
    def __init__(
        self,
        cell: str,
        vocab_size: int,
        embedding_dim: int,
        hidden: int,
        layers: int,
        bidirectional: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(dropout)
        rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_class(
            embedding_dim,
            hidden,
            layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out_dim = hidden * (2 if bidirectional else 1) * 2

    def forward(self, inputs: dict) -> torch.Tensor:
        # trim to the longest sequence of the batch: padding costs as much as text in an RNN
        tokens = trim_padding(inputs["text"])
        lengths = (tokens != 0).sum(1)
        mask = (tokens != 0).unsqueeze(-1)
        embedded = self.embedding_dropout(self.embedding(tokens))
        # oneDNN has no bf16 LSTM/GRU kernel on CPU (autocast would fail), so the recurrence stays fp32
        with torch.autocast(tokens.device.type, enabled=tokens.device.type == "cuda"):
            states, _ = self.rnn(embedded if tokens.device.type == "cuda" else embedded.float())
        fill = torch.finfo(states.dtype).min
        pooled_max = states.masked_fill(~mask, fill).amax(1)
        pooled_max = torch.where(lengths.unsqueeze(-1) > 0, pooled_max, torch.zeros_like(pooled_max))
        pooled_mean = (states * mask).sum(1) / lengths.clamp(min=1).unsqueeze(-1)
        return torch.cat([pooled_max, pooled_mean], dim=-1)


def _recurrent(
    cell: str,
    spec: InputSpec,
    output_dim: int,
    embedding_dim: int,
    hidden: int,
    layers: int,
    bidirectional: bool,
    dropout: float,
) -> nn.Module:
    if not spec.text_vocab_size:
        raise ConfigError(f"model.type {cell} needs a text feature")
    encoder = RecurrentEncoder(cell, spec.text_vocab_size, embedding_dim, hidden, layers, bidirectional, dropout)
    return assemble(spec, output_dim, {"text": encoder}, dropout=dropout)


@register_model(
    "lstm", accepts=("text",), description="bidirectional LSTM text encoder, max+mean pooling", fuses=DEFAULT_ENCODED
)
def lstm(
    spec: InputSpec,
    output_dim: int,
    *,
    embedding_dim: int = 128,
    hidden: int = 128,
    layers: int = 1,
    bidirectional: bool = True,
    dropout: float = 0.3,
) -> nn.Module:
    return _recurrent("lstm", spec, output_dim, embedding_dim, hidden, layers, bidirectional, dropout)


@register_model(
    "gru", accepts=("text",), description="bidirectional GRU text encoder, max+mean pooling", fuses=DEFAULT_ENCODED
)
def gru(
    spec: InputSpec,
    output_dim: int,
    *,
    embedding_dim: int = 128,
    hidden: int = 128,
    layers: int = 1,
    bidirectional: bool = True,
    dropout: float = 0.3,
) -> nn.Module:
    return _recurrent("gru", spec, output_dim, embedding_dim, hidden, layers, bidirectional, dropout)
