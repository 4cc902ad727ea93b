"""The Python API behind `modelforge.train(config)`: dispatch a config to its task's recipe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelforge.run import Run


def train(
    config: Any,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    show_progress: bool = False,
    resume: str | Path | None = None,
    force: bool = False,
) -> Run:
    """Train from a YAML path, a dict or a RunConfig; returns the finished run.

    `resume`: a run directory (or "auto") to continue from its last checkpoint; `force` accepts
    harmless config changes such as more epochs."""
    from modelforge.config import RunConfig, load_config

    if not isinstance(config, RunConfig):
        config = load_config(config, overrides)
    if config.task == "language-modeling":
        from modelforge.train.lm import train_language_model

        return train_language_model(  # type: ignore[return-value]
            config, out, show_progress=show_progress, resume=resume, force=force
        )
    if config.task == "recommendation":
        from modelforge.train.recommend import train_recommender

        return train_recommender(config, out, show_progress=show_progress)  # type: ignore[no-any-return]
    if config.task == "generation":
        from modelforge.generation.recipe import train_generator

        return train_generator(config, out, show_progress=show_progress)  # type: ignore[no-any-return]
    from modelforge.train.recipe import train as train_recipe

    return train_recipe(config, out, show_progress=show_progress, resume=resume, force=force)
