"""The model registry: `@register_model(name, accepts, description)` on a builder function.

A builder takes the fitted `InputSpec`, the output size and keyword options (the YAML's
`model:` keys) and returns an `nn.Module` whose forward takes the dict of input tensors.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelforge.registry import Registry

FAMILIES = (
    "mlp",
    "cnn",
    "resnet",
    "vit",
    "rnn",
    "transformer",
    "pretrained",
    "audio",
    "gpt",
    "recommend",
    "generative",
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Any]
    accepts: tuple[str, ...]
    description: str


MODELS: Registry[ModelEntry] = Registry("model type")
_loaded = False


def register_model(name: str, accepts: tuple[str, ...], description: str) -> Callable[[Any], Any]:
    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        MODELS.add(name, ModelEntry(name, builder, accepts, description))
        return builder

    return decorator


def load_families() -> None:
    """Import every family file once so their decorators run."""
    global _loaded
    if not _loaded:
        _loaded = True
        for family in FAMILIES:
            importlib.import_module(f"modelforge.models.{family}")


def get_model(name: str) -> ModelEntry:
    load_families()
    return MODELS.get(name)


def model_options(name: str) -> list[str]:
    """The YAML keys a model type accepts (its builder's keyword parameters)."""
    signature = inspect.signature(get_model(name).builder)
    return [p.name for p in signature.parameters.values() if p.kind == p.KEYWORD_ONLY]


def build_model(name: str, spec: Any, output_dim: int, options: dict[str, Any] | None = None) -> Any:
    return get_model(name).builder(spec, output_dim, **(options or {}))
