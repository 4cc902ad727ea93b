"""The model registry: `@register_model(name, accepts, description, fuses)` on a builder function.

A builder takes the fitted `InputSpec`, the output size and keyword options (the YAML's
`model:` keys) and returns an `nn.Module` whose forward takes the dict of input tensors.

`accepts` are the inputs a model reads on their own (any one of them is enough to build it);
`fuses` are the inputs it also takes beside one of those, through the shared default encoders
of `layers.assemble`. Inputs are `InputSpec.kinds` (tabular, text, image, audio) or a task's own
input (tokens, images, interactions); `FEATURE_INPUTS` says which input a feature type feeds.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from modelforge.errors import ConfigError
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
    "seq2seq",
    "detector",
    "speech",
)
# the model input each feature type (features[].type) feeds: numeric and category columns share one
FEATURE_INPUTS = {"numeric": "tabular", "category": "tabular", "text": "text", "image": "image", "audio": "audio"}

# model.* keys every model type takes, read by `build_model` rather than the builder (tasks.Task.model_keys
# says which tasks read each): members, an ensemble of that many
SHARED_MODEL_KEYS = ("members",)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Any]
    accepts: tuple[str, ...]
    description: str
    fuses: tuple[str, ...] = ()

    def takes(self, inputs: Collection[str]) -> bool:
        """Whether it builds on exactly these inputs: each one read, at least one by its own encoder."""
        return set(inputs) <= {*self.accepts, *self.fuses} and bool(set(inputs) & set(self.accepts))


MODELS: Registry[ModelEntry] = Registry("model type")
_loaded = False


def register_model(
    name: str, accepts: tuple[str, ...], description: str, fuses: tuple[str, ...] = ()
) -> Callable[[Any], Any]:
    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        MODELS.add(name, ModelEntry(name, builder, accepts, description, fuses))
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
    """The model `name` with its options; `members: k` (k > 1) makes an ensemble of k (models/ensemble.py)."""
    from modelforge.models.ensemble import build_members

    options = dict(options or {})
    members = options.pop("members", 1)
    return build_members(get_model(name).builder, members, spec, output_dim, **options)


def models_taking(inputs: Collection[str]) -> list[str]:
    """The registered models that build on exactly these inputs (see `ModelEntry.takes`)."""
    load_families()
    return [name for name in MODELS.names() if MODELS.get(name).takes(inputs)]


def check_model_features(model_type: str, features: Sequence[tuple[str, str]], inferred: bool = False) -> None:
    """ConfigError, one line, when `model_type` cannot take the (name, feature type) features.

    `inferred`: the features were inferred from the data (named by column, not by features[i]).
    """
    entry = get_model(model_type)
    inputs = {FEATURE_INPUTS[kind] for _, kind in features}
    fitting = models_taking(inputs)
    readable = {*entry.accepts, *entry.fuses}
    problems = []
    for index, (name, kind) in enumerate(features):
        if FEATURE_INPUTS[kind] not in readable:
            where = f"column {name!r} (inferred as {kind})" if inferred else f"features[{index}] ({name}, {kind})"
            others = fitting or models_taking({FEATURE_INPUTS[kind]})
            problems.append(
                f"{where}: model {model_type} does not accept {kind} features; "
                f"models that do: {', '.join(others) or 'none'}"
            )
    if not problems and not inputs & set(entry.accepts):
        kinds = ", ".join(sorted({kind for _, kind in features}))
        problems.append(
            f"model.type: {model_type} needs a feature of type {' or '.join(entry.accepts)}, "
            f"the {'inferred ' if inferred else ''}features are {kinds}; models that take them: "
            f"{', '.join(fitting) or 'none'}"
        )
    if problems:
        raise ConfigError("; ".join(problems))
