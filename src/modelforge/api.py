"""The Python API: `modelforge.train(config, out)`, `modelforge.load_run(path)`, `modelforge.report(run)`.

All are plain functions; torch, pandas and the task recipes are imported on first call, so
`import modelforge` stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelforge.errors import ConfigError

if TYPE_CHECKING:
    from modelforge.config import RunConfig
    from modelforge.generation.run import GeneratorRun
    from modelforge.run import Run, RunDirectory
    from modelforge.text.run import LanguageModelRun
    from modelforge.training.recommend import RecommenderRun


def train(
    config: str | Path | Mapping[str, Any] | RunConfig,
    out: str | Path | None = None,
    overrides: Sequence[str] | None = None,
    *,
    resume: str | Path | None = None,
    force: bool = False,
    show_progress: bool = False,
) -> Run | GeneratorRun | LanguageModelRun | RecommenderRun:
    """Train a model as a config says and return the finished run, loaded from its directory.

    Args:
        config: a YAML file path, a mapping with the same sections (task, data, model, train, ...)
            or a validated `modelforge.config.RunConfig`. Relative data paths in a YAML file are
            read relative to that file's folder; in a mapping, relative to the working directory.
        out: the run directory to create; it must be new or empty. None writes
            `runs/<config name>-<time>` under the working directory.
        overrides: `KEY=VALUE` strings applied on top of `config`, e.g. `["train.lr=3e-3",
            "train.epochs=2"]`; values are YAML. Not accepted with a RunConfig (set its fields).
        resume: continue an unfinished run from its newest good checkpoint: its directory, or
            "auto" for `out` (or the newest unfinished run of this config) when there is one.
        force: with `resume`, accept config changes that do not change what was already trained,
            such as more epochs or another thread count.
        show_progress: draw a progress bar on the terminal while training.

    Returns:
        `modelforge.run.Run` for classification and regression (predict, evaluate, outputs);
        `GeneratorRun` for image generation, `LanguageModelRun` for language modeling and
        `RecommenderRun` for recommendation. Every one has `path`, `config`, `metrics` (the test
        split's) and `history` (one row per epoch).

    Raises:
        modelforge.errors.ConfigError: the config is invalid (every problem, each by path), an
            override is malformed, or a resumed run's config differs from the saved one.
        modelforge.errors.DataError: a data file is missing or does not match the config.
        modelforge.errors.RunError: `out` exists and is not empty, or `resume` names no run.
        modelforge.errors.UnsupportedVerb: the task cannot resume.
    """
    from modelforge.config import RunConfig, load_config
    from modelforge.tasks import task_named

    if isinstance(overrides, str):
        raise ConfigError(f"overrides: expected a list of KEY=VALUE strings, got the string {overrides!r}")
    if isinstance(config, RunConfig):
        if overrides:
            raise ConfigError("overrides: not applied to a RunConfig; set its fields or pass a path or mapping")
    elif isinstance(config, str | Path):
        config = load_config(config, list(overrides or []))
    elif isinstance(config, Mapping):
        config = load_config(dict(config), list(overrides or []))
    else:
        raise ConfigError(f"config: expected a YAML path, a mapping or a RunConfig, got {type(config).__name__}")
    task = task_named(config.task)
    return task.train(config, out, show_progress=show_progress, resume=resume, force=force)  # type: ignore[no-any-return]


def load_run(path: str | Path) -> Run | GeneratorRun | LanguageModelRun | RecommenderRun:
    """Load a finished run directory, whatever its task, to predict, evaluate or report.

    Args:
        path: a directory written by `train` (or the `modelforge train` command).

    Returns:
        The task's run object, as `train` returns it.

    Raises:
        modelforge.errors.RunError: `path` is not a finished run or its weights do not load.
    """
    from modelforge.run import load_run as load

    return load(path)  # type: ignore[no-any-return]


def report(
    run: str | Path | RunDirectory,
    out: str | Path | None = None,
    *,
    data: str | Path | None = None,
    slice_by: Sequence[str] = (),
    explain: bool = True,
) -> Path:
    """Write a run's self-contained HTML report: learning curves, diagnostics, mistakes, model card.

    Args:
        run: a run directory, or a run object from `train` or `load_run`.
        out: the HTML file to write; None writes `report.html` in the run directory.
        data: labelled rows to diagnose (classification and regression); None uses the run's test split.
        slice_by: columns of `data` to break the metrics down by (classification and regression).
        explain: include Integrated Gradients attributions of the worst mistakes.

    Returns:
        The path of the HTML file written.

    Raises:
        modelforge.errors.RunError: `run` is not a finished run directory.
        modelforge.errors.DataError: `data` or `slice_by` do not fit the run.
    """
    from modelforge.evaluate.report import write_report

    run_dir = Path(run) if isinstance(run, str | Path) else run.path
    return write_report(run_dir, out, data=data, slice_by=list(slice_by), explain=explain)
