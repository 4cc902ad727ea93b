"""The search space: `tune.space` entries checked against the schema, then sampled per trial.

Every entry is keyed by a config path (`train.lr`, `model.hidden`). Before any trial runs,
each path must name a config key or an option of the model, and every end of every range
(and every choice) must make a valid config — so `train.lr: {uniform: [-1, 1]}` fails up
front with `tune.space.train.lr`, not after an hour of trials.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel

from modelforge.config import ModelConfig, RunConfig, SearchRange, apply_overrides, validate_config
from modelforge.errors import ConfigError, did_you_mean
from modelforge.tasks import TASKS

SCALAR_TYPES = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Param:
    """One searched config key: its range, how Optuna samples it, and how values are stored."""

    path: str
    kind: str  # uniform | loguniform | int | choice
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @classmethod
    def from_range(cls, path: str, spec: SearchRange) -> Param:
        if spec.choice is not None:
            return cls(path, "choice", choices=tuple(spec.choice))
        kind = next(k for k in ("uniform", "loguniform", "int") if spec.bounds_of(k) is not None)
        low, high = spec.bounds_of(kind)
        return cls(path, kind, low, high, spec.step, spec.log or kind == "loguniform")

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution([encode_choice(c) for c in self.choices])
        if self.kind == "int":
            step = 1 if self.log else int(self.step or 1)
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=step)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def decode(self, stored: Any) -> Any:
        """The config value for a value as Optuna stores it (lists travel as JSON text)."""
        if self.kind == "choice":
            return next(c for c in self.choices if encode_choice(c) == stored)
        return int(stored) if self.kind == "int" else float(stored)

    def grid_values(self) -> list[Any]:
        """Every value the grid sampler visits (stored form)."""
        if self.kind == "choice":
            return [encode_choice(c) for c in self.choices]
        if self.step is None and self.kind != "int":
            raise ConfigError(
                f"tune.space.{self.path}: the grid sampler needs choice, int or a step; add step: or use choice:"
            )
        step = self.step or 1
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        values = [self.low + i * step for i in range(count)]
        return [int(v) for v in values] if self.kind == "int" else [round(v, 12) for v in values]

    def ends(self) -> list[Any]:
        """The values checked against the schema before the study starts."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]


def encode_choice(value: Any) -> Any:
    return value if isinstance(value, SCALAR_TYPES) else json.dumps(value)


def parse_space(raw: dict[str, Any], overrides: list[str]) -> tuple[RunConfig, list[Param]]:
    """The validated base config and its search space; raises ConfigError naming the bad key."""
    base = validate_config(apply_overrides(_copy(raw), list(overrides)))
    if base.tune is None:
        raise ConfigError("tune: the config has no tune section (e.g. tune.space.train.lr: {loguniform: [1e-4, 0.1]})")
    TASKS.get(base.task).require("tune", "task")
    known = TASKS.get(base.task).epoch_metrics
    if base.tune.metric not in known:
        raise ConfigError(
            f"tune.metric: {base.tune.metric!r} is not a per-epoch metric of {base.task}"
            f"{did_you_mean(base.tune.metric, known)}; known: {', '.join(known)}"
        )
    params = [Param.from_range(path, spec) for path, spec in base.tune.space.items()]
    model_types = _model_types_searched(base, params)
    for param in params:
        check_path(param.path, model_types)
    for param in params:
        for value in param.ends():
            _check_value(raw, overrides, param.path, value)
    return base, params


def _model_types_searched(base: RunConfig, params: list[Param]) -> list[str]:
    for param in params:
        if param.path == "model.type":
            if param.kind != "choice":
                raise ConfigError("tune.space.model.type: model types are searched with choice: [mlp, ...]")
            return [str(c) for c in param.choices]
    return [base.model.type]


def check_path(path: str, model_types: list[str]) -> None:
    """A searched path must name a config key (or a model option) that holds a value."""
    parts = path.split(".")
    if parts[0] == "tune":
        raise ConfigError(f"tune.space.{path}: the tune section itself cannot be searched")
    section: Any = RunConfig
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        if section is ModelConfig:
            _check_model_option(path, part, model_types)
            return
        fields = section.model_fields
        if part not in fields:
            raise ConfigError(f"tune.space.{path}: {where} is not a config key{did_you_mean(part, fields)}")
        annotation = fields[part].annotation
        sections = _section_types(annotation)
        is_last = depth == len(parts) - 1
        if not is_last and _is_list(annotation):
            raise ConfigError(f"tune.space.{path}: {where} is a list; its entries cannot be searched by path")
        if is_last and sections and not _accepts_plain_values(annotation):
            raise ConfigError(f"tune.space.{path}: {where} is a section; search one of its keys, e.g. {where}.X")
        if not is_last:
            if not sections:
                raise ConfigError(f"tune.space.{path}: {where} is a value, not a section")
            section = sections[0]


def _check_model_option(path: str, option: str, model_types: list[str]) -> None:
    from modelforge.models.registry import model_options

    if option == "type":
        return
    allowed: set[str] = set()
    for name in model_types:
        try:
            allowed.update(model_options(name))
        except Exception as exc:  # RegistryError with its close-match hint
            raise ConfigError(f"tune.space.{path}: model.type: {exc}") from None
    if option not in allowed:
        raise ConfigError(
            f"tune.space.{path}: {option} is not an option of model {'/'.join(model_types)}"
            f"{did_you_mean(option, allowed)}; options: {', '.join(sorted(allowed))}"
        )


def _check_value(raw: dict[str, Any], overrides: list[str], path: str, value: Any) -> None:
    candidate = apply_overrides(_copy(raw), list(overrides))
    set_path(candidate, path, value)
    candidate.pop("tune", None)
    try:
        validate_config(candidate)
    except ConfigError as exc:
        raise ConfigError(f"tune.space.{path}: value {value!r} in the range is invalid ({exc})") from None


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _section_types(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _section_types(arg)]
    return []


def _accepts_plain_values(annotation: Any) -> bool:
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    return any(not _section_types(arg) and arg is not type(None) for arg in args)


def _is_list(annotation: Any) -> bool:
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    return any(typing.get_origin(arg) is list for arg in args)


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))
