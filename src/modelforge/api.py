"""The Python API behind `modelforge.train(config)`: hand a config to its task's recipe."""

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
    from modelforge.tasks import task_named

    if not isinstance(config, RunConfig):
        config = load_config(config, overrides)
    task = task_named(config.task)
    return task.train(config, out, show_progress=show_progress, resume=resume, force=force)  # type: ignore[no-any-return]
