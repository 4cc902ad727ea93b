"""Recommenders over (user, item) pairs: matrix factorization and a two-tower model.

Both encode a user and an item into vectors whose dot product plus a global bias is the
score (a rating for explicit feedback, a logit for implicit). Biases are folded into the
vectors ([u, 1, b_u] · [v, b_i, 1]) so ranking every item for a user is one matrix product.
Index 0 of the user and item tables is the unknown id.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from modelforge.errors import ConfigError
from modelforge.models.registry import register_model


@dataclass(frozen=True)
class InteractionSpec:
    """What a recommender sees: id counts (unknown included) and feature widths."""

    n_users: int
    n_items: int
    user_feature_dim: int = 0
    item_feature_dim: int = 0
    global_mean: float = 0.0


def _check(spec: object, name: str) -> InteractionSpec:
    if not isinstance(spec, InteractionSpec):
        raise ConfigError(f"model.type {name} needs task: recommendation")
    return spec


def _with_biases(vectors: torch.Tensor, bias: torch.Tensor, bias_first: bool) -> torch.Tensor:
    ones = torch.ones_like(bias)
    return torch.cat([vectors, bias, ones] if bias_first else [vectors, ones, bias], dim=-1)


class MatrixFactorization(nn.Module):
    def __init__(self, spec: InteractionSpec, dim: int) -> None:
        super().__init__()
        self.users, self.items = nn.Embedding(spec.n_users, dim), nn.Embedding(spec.n_items, dim)
        self.user_bias, self.item_bias = nn.Embedding(spec.n_users, 1), nn.Embedding(spec.n_items, 1)
        self.global_bias = nn.Parameter(torch.tensor(float(spec.global_mean)))
        for table in (self.users, self.items):
            nn.init.normal_(table.weight, std=0.05)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)

    def encode_users(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["user"]
        return _with_biases(self.users(ids), self.user_bias(ids), bias_first=False)

    def encode_items(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["item"]
        return _with_biases(self.items(ids), self.item_bias(ids), bias_first=True)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.encode_users(batch) * self.encode_items(batch)).sum(-1) + self.global_bias


class Tower(nn.Module):
    """id embedding ⊕ MLP(features) → a `dim`-wide vector and a scalar bias."""

    def __init__(self, count: int, feature_dim: int, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.ids = nn.Embedding(count, dim)
        nn.init.normal_(self.ids.weight, std=0.05)
        self.features = (
            nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
            if feature_dim
            else None
        )
        self.bias = nn.Embedding(count, 1)
        nn.init.zeros_(self.bias.weight)

    def forward(self, ids: torch.Tensor, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        vector = self.ids(ids)
        if self.features is not None and features is not None:
            vector = vector + self.features(features)
        return vector, self.bias(ids)


class TwoTower(nn.Module):
    def __init__(self, spec: InteractionSpec, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.user_tower = Tower(spec.n_users, spec.user_feature_dim, dim, hidden, dropout)
        self.item_tower = Tower(spec.n_items, spec.item_feature_dim, dim, hidden, dropout)
        self.global_bias = nn.Parameter(torch.tensor(float(spec.global_mean)))

    def encode_users(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        vector, bias = self.user_tower(batch["user"], batch.get("user_features"))
        return _with_biases(vector, bias, bias_first=False)

    def encode_items(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        vector, bias = self.item_tower(batch["item"], batch.get("item_features"))
        return _with_biases(vector, bias, bias_first=True)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.encode_users(batch) * self.encode_items(batch)).sum(-1) + self.global_bias


@register_model("mf", accepts=("interactions",), description="matrix factorization with user/item biases")
def mf(spec: InteractionSpec, output_dim: int = 1, *, dim: int = 32) -> nn.Module:
    return MatrixFactorization(_check(spec, "mf"), dim)


@register_model("two_tower", accepts=("interactions",), description="user and item towers over ids + feature tables")
def two_tower(
    spec: InteractionSpec, output_dim: int = 1, *, dim: int = 32, hidden: int = 64, dropout: float = 0.1
) -> nn.Module:
    return TwoTower(_check(spec, "two_tower"), dim, hidden, dropout)
