"""Transformer encoder for text: embeddings + sinusoidal positions, multi-head self-attention,
masked mean pooling."""

from __future__ import annotations

import torch
from torch import nn

from modelforge.data.preprocess import InputSpec
from modelforge.errors import ConfigError
from modelforge.models.layers import DEFAULT_ENCODED, assemble, sinusoidal_positions, trim_padding
from modelforge.models.registry import register_model


class TransformerTextEncoder(nn.Module):
    def __init__(self, vocab_size: int, length: int, width: int, depth: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0)
        self.register_buffer("positions", sinusoidal_positions(length, width), persistent=False)
        layer = nn.TransformerEncoderLayer(
            width, heads, width * 4, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.scale = width**0.5
        self.out_dim = width

    def forward(self, inputs: dict) -> torch.Tensor:
        tokens = inputs["text"]
        # trimming shared padding only saves time (padding keys are masked, positions start at 0);
        # a traced graph keeps the full length, since nn.MultiheadAttention's trace freezes it
        if not torch.jit.is_tracing():
            tokens = trim_padding(tokens)
        padding = tokens == 0
        x = self.embedding(tokens) * self.scale + self.positions[: tokens.shape[1]]
        x = self.norm(self.encoder(self.dropout(x), src_key_padding_mask=padding))
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        return (x * keep).sum(1) / keep.sum(1).clamp(min=1)


@register_model(
    "transformer",
    accepts=("text",),
    description="transformer encoder (positional encoding, multi-head self-attention)",
    fuses=DEFAULT_ENCODED,
)
def transformer(
    spec: InputSpec, output_dim: int, *, width: int = 128, depth: int = 2, heads: int = 4, dropout: float = 0.1
) -> nn.Module:
    if not spec.text_vocab_size:
        raise ConfigError("model.type transformer needs a text feature")
    if width % heads:
        raise ConfigError(f"model.width: {width} must be divisible by model.heads ({heads})")
    encoder = TransformerTextEncoder(spec.text_vocab_size, spec.text_length, width, depth, heads, dropout)
    return assemble(spec, output_dim, {"text": encoder}, dropout=dropout)
