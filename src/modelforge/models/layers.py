"""Blocks shared by the families: activations, init, the tabular/text/image encoders used for
inputs a family does not handle itself, and the fusion model that concatenates encoders."""

from __future__ import annotations

import math

import torch
from torch import nn

from modelforge.data.preprocess import InputSpec
from modelforge.registry import Registry

# the inputs `assemble` has a default encoder for: every family built with it fuses these
DEFAULT_ENCODED = ("tabular", "text", "image")

ACTIVATIONS: Registry[type[nn.Module]] = Registry("activation")
ACTIVATIONS.add("relu", nn.ReLU)
ACTIVATIONS.add("gelu", nn.GELU)
ACTIVATIONS.add("sigmoid", nn.Sigmoid)
ACTIVATIONS.add("tanh", nn.Tanh)
ACTIVATIONS.add("silu", nn.SiLU)


def activation(name: str) -> nn.Module:
    return ACTIVATIONS.get(name)()


def initialize(module: nn.Module, scheme: str) -> nn.Module:
    """xavier / he on Linear and Conv weights (zero bias); `default` keeps PyTorch's init."""
    if scheme == "default":
        return module
    if scheme not in ("xavier", "he"):
        from modelforge.errors import ConfigError

        raise ConfigError(f"model.init: expected xavier, he or default, got {scheme!r}")
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d):
            if scheme == "xavier":
                nn.init.xavier_uniform_(layer.weight)
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def mlp_layers(in_dim: int, hidden: list[int], act: str, dropout: float, norm: str | None) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        elif norm == "layer":
            layers.append(nn.LayerNorm(width))
        layers.append(activation(act))
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    return nn.Sequential(*layers), in_dim


class TabularEncoder(nn.Module):
    """Numeric columns plus an embedding per category column, through an MLP."""

    def __init__(self, spec: InputSpec, hidden: list[int], act: str, dropout: float, norm: str | None) -> None:
        super().__init__()
        dims = [
            d or min(32, (c + 1) // 2)
            for c, d in zip(
                spec.category_cardinalities,
                spec.category_embedding_dims or (None,) * len(spec.category_cardinalities),
                strict=True,
            )
        ]
        self.embeddings = nn.ModuleList(
            nn.Embedding(c, d) for c, d in zip(spec.category_cardinalities, dims, strict=True)
        )
        self.has_numeric = spec.numeric_dim > 0
        self.body, self.out_dim = mlp_layers(spec.numeric_dim + sum(dims), hidden, act, dropout, norm)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [inputs["numeric"]] if self.has_numeric else []
        if len(self.embeddings):
            codes = inputs["category"]
            parts += [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.body(torch.cat(parts, dim=-1))


class BagOfEmbeddings(nn.Module):
    """Default text encoder: mean of token embeddings (padding ignored)."""

    def __init__(self, vocab_size: int, dim: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.out_dim = dim

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = inputs["text"]
        mask = (tokens != 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        return (self.embedding(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)


class SmallConvEncoder(nn.Module):
    """Default image encoder: two conv blocks and global average pooling."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width * 2, 3, padding=1),
            nn.BatchNorm2d(width * 2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = width * 2

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.body(inputs["image"])


class FusionModel(nn.Module):
    """One encoder per input kind; their outputs are concatenated and fed to a linear head."""

    def __init__(self, encoders: dict[str, nn.Module], output_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        in_dim = sum(int(e.out_dim) for e in encoders.values())  # type: ignore[arg-type]
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = nn.Linear(in_dim, output_dim)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features = [encoder(inputs) for encoder in self.encoders.values()]
        joined = features[0] if len(features) == 1 else torch.cat(features, dim=-1)
        return self.head(self.dropout(joined))


def assemble(
    spec: InputSpec, output_dim: int, primary: dict[str, nn.Module], dropout: float = 0.0, init: str = "default"
) -> FusionModel:
    """Fill in default encoders for input kinds the family does not handle, then fuse."""
    encoders = dict(primary)
    if "tabular" in spec.kinds and "tabular" not in encoders:
        encoders["tabular"] = TabularEncoder(spec, [64], "relu", 0.0, None)
    if "text" in spec.kinds and "text" not in encoders:
        encoders["text"] = BagOfEmbeddings(spec.text_vocab_size)
    if "image" in spec.kinds and "image" not in encoders:
        assert spec.image_shape is not None
        encoders["image"] = SmallConvEncoder(spec.image_shape[0])
    return initialize(FusionModel(encoders, output_dim, dropout), init)  # type: ignore[return-value]


class AdaptiveAvgPool2d(nn.Module):
    """`nn.AdaptiveAvgPool2d` that exports for any sizes: eager it is PyTorch's kernel; traced, the
    same bins are averaged as two matrix products over the input's (fixed) height and width,
    since ONNX has no adaptive pooling where the output size does not divide the input size."""

    def __init__(self, output_size: tuple[int, int]) -> None:
        super().__init__()
        self.output_size = tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing():
            return nn.functional.adaptive_avg_pool2d(x, self.output_size)
        rows = adaptive_bins(int(x.shape[-2]), self.output_size[0]).to(x.dtype)
        columns = adaptive_bins(int(x.shape[-1]), self.output_size[1]).to(x.dtype)
        return rows @ x @ columns.T


def adaptive_bins(size: int, out: int) -> torch.Tensor:
    """out × size averaging matrix of adaptive pooling: bin i spans [⌊i·size/out⌋, ⌈(i+1)·size/out⌉)."""
    matrix = torch.zeros(out, size)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def trim_padding(tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Right-padded token ids cut to the batch's longest row (at least one column).

    Written in tensor ops (`nonzero` → `index_select`) rather than `int(lengths.max())`, so an
    exported graph (ONNX, TorchScript) keeps the cut dynamic instead of freezing the example
    batch's length; the values are those of slicing `tokens[:, :longest]`.
    """
    used = (tokens != pad_id).any(0) | (torch.arange(tokens.shape[1], device=tokens.device) == 0)
    return tokens.index_select(1, used.nonzero().squeeze(1))


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table
