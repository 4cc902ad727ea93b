"""Where a fine-tune starts and what it may change: `init_from` and `train.freeze`.

`init_from` is a modelforge run directory (its `model.safetensors` must fit the new model key
for key and shape, LoRA matrices excepted) or a local Hugging Face folder (loaded into the
model's pretrained encoder). `train.freeze` lists parameter-name prefixes that stay fixed.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from modelforge.errors import ConfigError, did_you_mean

LORA_SUFFIXES = ("lora_a", "lora_b")


def start_from(model: nn.Module, source: str | Path | None, frozen: list[str]) -> None:
    """What the recipe calls after building a model: `init_from`, then `train.freeze`."""
    if source:
        init_from(model, source)
    if frozen:
        freeze(model, frozen)


def init_from(model: nn.Module, source: str | Path) -> str:
    """Load the weights of a run directory or a Hugging Face folder into `model`; returns the kind."""
    folder = Path(source)
    if (folder / "model.safetensors").is_file() and (folder / "model.json").is_file():
        load_run_weights(model, folder)
        return "run"
    if (folder / "config.json").is_file():
        load_hf_folder(model, folder)
        return "hf"
    if not folder.exists():
        raise ConfigError(f"init_from: {folder} not found")
    raise ConfigError(
        f"init_from: {folder} is neither a finished modelforge run (model.safetensors + model.json) "
        "nor a Hugging Face model folder (config.json + model.safetensors)"
    )


def load_run_weights(model: nn.Module, run_dir: Path) -> None:
    """Copy a run's weights; every key must match in name and shape (else one line listing them)."""
    from safetensors.torch import load_file

    state = load_file(str(run_dir / "model.safetensors"))
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(LORA_SUFFIXES)]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)}→{tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        kind = json.loads((run_dir / "model.json").read_text()).get("type", "?")
        parts = [
            _listed("missing", missing),
            _listed("unexpected", unexpected),
            _listed("shape", wrong),
        ]
        hint = (
            " (merge its adapter first: modelforge merge-adapter)"
            if any(k.endswith(LORA_SUFFIXES) for k in unexpected)
            else ""
        )
        raise ConfigError(
            f"init_from: {run_dir} ({kind} model) does not fit this model: {'; '.join(p for p in parts if p)}{hint}"
        )
    model.load_state_dict(state, strict=False)  # LoRA matrices, if any, keep their fresh init


def _listed(label: str, keys: list[str], limit: int = 4) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{label} {', '.join(keys[:limit])}{more}"


def load_hf_folder(model: nn.Module, folder: Path) -> None:
    """Load a Hugging Face encoder folder into the model's pretrained encoder (same architecture)."""
    from modelforge.models.pretrained import BertEncoder, bert_settings, load_hf_weights

    encoders = [m for m in model.modules() if isinstance(m, BertEncoder)]
    if not encoders:
        raise ConfigError(
            f"init_from: {folder} is a Hugging Face folder; it initializes models with a pretrained encoder "
            "(model.type hf_encoder), not this one"
        )
    settings = bert_settings(folder)
    if settings != encoders[0].settings:
        changed = [
            f"{name} {getattr(settings, name)} vs {getattr(encoders[0].settings, name)}"
            for name in ("vocab_size", "hidden_size", "layers", "heads", "intermediate_size", "max_positions")
            if getattr(settings, name) != getattr(encoders[0].settings, name)
        ]
        if changed:
            raise ConfigError(f"init_from: {folder} has another architecture than model.path: {', '.join(changed)}")
    load_hf_weights(encoders[0], folder)


def freeze(model: nn.Module, prefixes: list[str]) -> int:
    """Fix every parameter whose name is a prefix or lies under one; returns how many tensors."""
    names = [name for name, _ in model.named_parameters()]
    frozen = 0
    for prefix in prefixes:
        hits = [
            p for name, p in model.named_parameters() if name == prefix or name.startswith(prefix.rstrip(".") + ".")
        ]
        if not hits:
            modules = [name for name, _ in model.named_modules() if name]
            raise ConfigError(
                f"train.freeze: no parameter under {prefix!r}{did_you_mean(prefix, modules + names)}; "
                f"top-level modules: {', '.join(n for n in modules if '.' not in n)}"
            )
        for param in hits:
            param.requires_grad_(False)
        frozen += len(hits)
    return frozen


def parameter_counts(model: nn.Module) -> dict[str, float]:
    """Total and trainable parameter counts, and the trainable share."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable_parameters": trainable, "trainable_share": trainable / max(total, 1)}
