"""Parity checks: an exported model must give the eager model's outputs on real rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from modelforge.errors import ModelforgeError

TOLERANCE = 1e-4
PARITY_ROWS = 256


class ExportError(ModelforgeError):
    """A run cannot be exported in the asked format, or the export does not match the model."""


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_diff: float
    tolerance: float
    batches: str = ""  # which batches were compared, e.g. "batches of 256+1+1+7+7"

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def describe(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        diff = f"max abs diff {self.max_abs_diff:.3g} (tolerance {self.tolerance:g})"
        where = f" ({self.batches})" if self.batches else ""
        return f"parity on {self.rows} real rows{where}: {diff} {verdict}"


def compare(expected: np.ndarray, actual: np.ndarray, tolerance: float = TOLERANCE) -> Parity:
    if expected.shape != actual.shape:
        raise ExportError(f"exported model returns shape {actual.shape}, the eager model {expected.shape}")
    return Parity(len(expected), float(np.abs(expected - actual).max()) if expected.size else 0.0, tolerance)


class PositionalInputs(nn.Module):
    """Exporters pass tensors positionally; our models take a dict of named input groups."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors, strict=True)))
