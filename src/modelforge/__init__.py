"""modelforge: from raw data to a trained, evaluated, compressed and served model, one config.

    import modelforge
    run = modelforge.train("examples/quickstart.yaml")
    run.evaluate(frame); run.predict(frame)
    run = modelforge.load_run("runs/quickstart")

Heavy imports (torch, pandas) happen on first use, so `modelforge --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
    from modelforge.train.recipe import train as train_recipe

    if not isinstance(config, RunConfig):
        config = load_config(config, overrides)
    if config.task == "language-modeling":
        from modelforge.train.lm import train_language_model

        return train_language_model(config, out, show_progress=show_progress)  # type: ignore[no-any-return]
    return train_recipe(config, out, show_progress=show_progress, resume=resume, force=force)


def load_run(path: str | Path) -> Run:
    """Load a finished run directory for predict/evaluate."""
    from modelforge.run import load_run as load

    return load(path)


__all__ = ["__version__", "load_run", "train"]
