"""Multi-layer perceptron over tabular inputs (numeric columns + category embeddings)."""

from __future__ import annotations

from torch import nn

from modelforge.data.preprocess import InputSpec
from modelforge.models.layers import DEFAULT_ENCODED, TabularEncoder, assemble
from modelforge.models.registry import register_model


@register_model(
    "mlp",
    accepts=("tabular", "text", "image"),
    description="multi-layer perceptron; category embeddings; default for tables",
    fuses=DEFAULT_ENCODED,
)
def mlp(
    spec: InputSpec,
    output_dim: int,
    *,
    hidden: list[int] | None = None,
    activation: str = "relu",
    dropout: float = 0.1,
    norm: str | None = None,
    init: str = "he",
) -> nn.Module:
    hidden = [128, 64] if hidden is None else list(hidden)
    primary = {}
    if "tabular" in spec.kinds:
        primary["tabular"] = TabularEncoder(spec, hidden, activation, dropout, norm)
    return assemble(spec, output_dim, primary, init=init)
