"""LoRA: a low-rank update beside a frozen Linear layer, saved as a separate adapter, mergeable.

`LoRALinear` keeps the base layer's `weight` and `bias` under their own names, so a model with
LoRA has the same state-dict keys as without it plus `lora_a` / `lora_b`; `merge_lora` folds
the update into plain `nn.Linear` layers (what export needs) and the keys match the base model.

    y = x Wᵀ + b + (alpha / rank) · dropout(x) Aᵀ Bᵀ      A: rank×in (random), B: out×rank (zeros)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationError
from torch import nn

from modelforge.config import Section, format_validation_error
from modelforge.errors import ConfigError, ModelforgeError, did_you_mean

ADAPTER_FILE = "adapter.safetensors"
ADAPTER_INFO = "adapter.json"


class LoraSettings(Section):
    rank: int = Field(8, ge=1, description="rank of the update")
    alpha: float = Field(16.0, gt=0, description="the update is scaled by alpha / rank")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA branch input")
    targets: list[str] = Field(default_factory=lambda: ["query", "value"], description="names of Linear layers")


def lora_settings(raw: dict[str, Any] | LoraSettings, where: str = "model.lora") -> LoraSettings:
    """Validate the `lora:` mapping; errors name the key, e.g. `model.lora.rank: must be >= 1, got 0`."""
    if isinstance(raw, LoraSettings):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping like {{rank: 8, alpha: 16, targets: [query, value]}}")
    try:
        return LoraSettings.model_validate(raw)
    except ValidationError as exc:
        lines = format_validation_error(exc, LoraSettings).split("; ")
        raise ConfigError("; ".join(f"{where}.{line}" for line in lines)) from None


class LoRALinear(nn.Module):
    """A frozen Linear plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.empty(rank, self.in_features, dtype=base.weight.dtype))
        self.lora_b = nn.Parameter(torch.zeros(self.out_features, rank, dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.dropout(x), self.lora_a), self.lora_b)
        return F.linear(x, self.weight, self.bias) + update * self.scaling

    def merged(self) -> nn.Linear:
        """A plain Linear computing the same function (W + scaling · B A)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            delta = (self.lora_b.float() @ self.lora_a.float()) * self.scaling
            linear.weight.copy_((self.weight.float() + delta).to(self.weight.dtype))
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear.to(self.weight.device)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.lora_a.shape[0]}, scaling={self.scaling:g}"


def apply_lora(module: nn.Module, settings: LoraSettings) -> int:
    """Wrap every Linear whose own name is in `settings.targets`; returns how many were wrapped."""
    found: dict[str, int] = {}
    linear_names: set[str] = set()
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                linear_names.add(name)
                if name in settings.targets:
                    setattr(parent, name, LoRALinear(child, settings.rank, settings.alpha, settings.dropout))
                    found[name] = found.get(name, 0) + 1
    missing = [t for t in settings.targets if t not in found]
    if missing:
        raise ConfigError(
            f"model.lora.targets: no Linear layer named {missing[0]!r}{did_you_mean(missing[0], linear_names)}; "
            f"available: {', '.join(sorted(linear_names))}"
        )
    return sum(found.values())


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its merged Linear, in place; returns the model."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.merged())
    return model


# ----------------------------------------------------------------------------- adapter files
def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every trained tensor: the LoRA matrices plus whatever else trains (the head, unfrozen norms)."""
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_adapter(model: nn.Module, folder: str | Path, info: dict[str, Any] | None = None) -> Path | None:
    """Write `adapter.safetensors` (+ `adapter.json`) when the model has LoRA layers; else nothing."""
    from safetensors.torch import save

    from modelforge.files import atomic_write_bytes, atomic_write_json

    if not has_lora(model) or not _is_writer():
        return None
    folder = Path(folder)
    state = adapter_state(model)
    atomic_write_bytes(folder / ADAPTER_FILE, save(state))
    total = sum(p.numel() for p in model.parameters())
    trained = sum(t.numel() for t in state.values())
    record = {"tensors": len(state), "parameters": trained, "share_of_model": trained / max(total, 1), **(info or {})}
    atomic_write_json(folder / ADAPTER_INFO, record)
    return folder / ADAPTER_FILE


def _is_writer() -> bool:
    return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Load an adapter file into a model built with the same LoRA options (base weights already in)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / ADAPTER_FILE
    if not path.is_file():
        raise ModelforgeError(f"{path}: adapter file not found")
    state = load_file(str(path))
    own = dict(model.named_parameters())
    unknown = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    if unknown or wrong:
        listed = ", ".join([*unknown[:5], *(f"{k} (shape)" for k in wrong[:5])])
        raise ModelforgeError(f"{path}: adapter does not fit the model: {listed}")
    model.load_state_dict(state, strict=False)
    return model


def read_adapter_info(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / ADAPTER_INFO
    return json.loads(path.read_text()) if path.exists() else {}
