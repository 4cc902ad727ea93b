"""The `modelforge` command line. Each verb is a thin call into its stage package.

Imports of torch and friends happen inside the verbs, so `modelforge --help` is instant.
Any ModelforgeError becomes one line on stderr and exit code 2; an OSError (a path the system will
not read or write) one line `PATH: reason` and exit code 74.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

# plain click help: typer's rich help imports rich.markdown and markdown_it, ~5x the whole start-up
app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="From raw data to a trained, evaluated and served model, with one YAML config.",
)

SetOption = Annotated[list[str] | None, typer.Option("--set", help="override a config key: train.lr=3e-4")]


def _print_version(value: bool) -> None:
    if value:
        from modelforge import __version__

        typer.echo(f"modelforge {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="print the version and exit")
    ] = False,
) -> None:
    """From raw data to a trained, evaluated and served model, with one YAML config."""


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, allow_nan=True))


@app.command()
def init(
    data: Annotated[Path, typer.Argument(help="data file or image folder")],
    target: Annotated[str | None, typer.Option(help="target column (array name for .npz)")] = None,
    task: Annotated[
        str | None, typer.Option(help="a registered task (see `modelforge tasks`); default: inferred")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the config here (default: print it)")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing --out")] = False,
) -> None:
    """Infer a starter config from the data: column types, task, model."""
    from modelforge.files import atomic_write_text
    from modelforge.init import starter_config_yaml

    text = starter_config_yaml(data, target, task, out)
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.exists() and not force:
        from modelforge.errors import ModelforgeError

        raise ModelforgeError(f"{out}: exists; pass --force to overwrite")
    atomic_write_text(out, text)
    typer.echo(f"wrote {out}", err=True)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML config")],
    out: Annotated[Path | None, typer.Option(help="run directory (default: runs/NAME-TIME)")] = None,
    set_: SetOption = None,
    progress: Annotated[bool, typer.Option(help="live progress bar")] = True,
    resume: Annotated[str | None, typer.Option(help="continue RUN_DIR from its last checkpoint, or 'auto'")] = None,
    force: Annotated[bool, typer.Option(help="with --resume: accept harmless config changes (more epochs)")] = False,
    nproc: Annotated[int, typer.Option(help="data-parallel processes on this machine (spawns torchrun)")] = 1,
) -> None:
    """Train a model; writes a run directory and prints the test metrics."""
    if nproc > 1:
        from modelforge.training.launch import run_torchrun

        raise typer.Exit(run_torchrun(nproc, sys.argv[1:]))
    import modelforge
    from modelforge.config import load_config

    cfg = load_config(config, set_ or [])
    run = modelforge.train(cfg, out, show_progress=progress, resume=resume, force=force)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary
        _print_summary(run)


def _print_summary(run: Any) -> None:
    from modelforge.tasks import TASKS

    metrics = run.metrics
    keys = getattr(run, "headline", None) or TASKS.get(run.task).headline
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in keys if isinstance(metrics.get(k), int | float))
    typer.echo(f"{metrics.get('split', 'valid')}: {shown}")
    decision = getattr(run, "decision", None)
    if decision is not None and decision.tuned():
        typer.echo(f"decision: {decision.rule()}")
    typer.echo(f"run: {run.path}")


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[Path | None, typer.Option(help="labelled data (default: the run's saved test metrics)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    perturb: Annotated[
        str | None,
        typer.Option(help="audio runs: the metric beside clean under recording shifts, e.g. silence,gain,speed,noise"),
    ] = None,
) -> None:
    """Metrics of a trained run on labelled data."""
    from modelforge.run import load_run
    from modelforge.tasks import task_of_run

    task = task_of_run(run, "evaluate")
    loaded = load_run(run)
    if perturb is not None:
        from modelforge.errors import ModelforgeError
        from modelforge.evaluate.robustness import perturbed_metrics

        if data is None:
            raise ModelforgeError("--perturb: needs --data (the labelled clips to record differently)")
        shifted = perturbed_metrics(loaded, data, perturb, (getattr(loaded, "headline", None) or task.headline)[0])
        if as_json:
            _echo_json(shifted)
            return
        for key, value in shifted.items():
            if key != "metric":
                typer.echo(f"{key:>14}  {shifted['metric']} {value:.4f}  ({value - shifted['clean']:+.4f})")
        return
    metrics = loaded.evaluate(data) if data is not None else loaded.metrics
    if as_json:
        _echo_json(metrics)
        return
    keys = getattr(loaded, "headline", None) or task.headline
    for key in keys:
        if key in metrics:
            typer.echo(f"{key:>12}  {metrics[key]:.4f}")


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[Path, typer.Option(help="rows to predict (target column optional)")],
    out: Annotated[Path | None, typer.Option(help="CSV to write (default: stdout)")] = None,
    engine: Annotated[str, typer.Option(help="torch | onnx (after `modelforge export RUN --format onnx`)")] = "torch",
    threshold: Annotated[
        float | None, typer.Option(help="two classes: flag the positive class when its probability is ≥ this")
    ] = None,
    score_threshold: Annotated[
        float | None, typer.Option(help="detection: keep boxes scoring at least this (default: the run's)")
    ] = None,
) -> None:
    """Predictions for new rows, one per input row: its row number, label and class probabilities, or the value.

    Classification runs apply their saved decision (decision.json: calibration, threshold); --threshold
    replaces the saved threshold."""
    from modelforge.data.readers import read_data_with_rows
    from modelforge.files import atomic_write_text
    from modelforge.run import load_run

    if engine not in ("torch", "onnx"):
        from modelforge.errors import ModelforgeError

        raise ModelforgeError(f"--engine: expected torch or onnx, got {engine!r}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        from modelforge.errors import ModelforgeError

        raise ModelforgeError(f"--threshold: must be a probability in [0, 1], got {threshold}")
    from modelforge.tasks import task_of_run

    task = task_of_run(run, "predict")
    if task.predict is not None:  # a task whose predictions are not one row per table row (detection's boxes)
        from modelforge.tasks import load_entry

        if threshold is not None:
            from modelforge.errors import ModelforgeError

            raise ModelforgeError(f"--threshold: not for {task.name} runs (see --score-threshold)")
        options: dict[str, Any] = {"score_threshold": score_threshold} if score_threshold is not None else {}
        if engine == "onnx":
            options["engine"] = engine
        typer.echo(load_entry(task.predict)(run, data, out, **options), nl=out is not None, err=out is not None)
        return
    if score_threshold is not None:
        from modelforge.errors import ModelforgeError

        raise ModelforgeError(f"--score-threshold: applies to detection runs, {run} is a {task.name} run")
    if threshold is not None and task.target_kind not in ("label", "labels"):
        from modelforge.errors import ModelforgeError

        raise ModelforgeError(f"--threshold: applies to classification and multilabel runs, {run} is a {task.name} run")
    if engine == "onnx":
        from modelforge.tasks import load_entry

        predictor = load_entry(task.onnx_predictor)(run, None)
        config = predictor.run.config
    else:
        predictor = load_run(run)
        config = predictor.config
    # unreadable rows are refused unless the run's config says data.bad_rows: skip; then `row` shows the gaps
    rows, numbers = read_data_with_rows(data, config.data.bad_rows)
    frame = predictor.predict(rows) if threshold is None else predictor.predict(rows, threshold=threshold)
    if len(frame) == len(numbers):  # one answer per row (a recommender's top-K lists name their user instead)
        frame.insert(0, "row", numbers)
    text = frame.to_csv(index=False)
    if out is None:
        typer.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
        typer.echo(f"wrote {len(frame)} predictions to {out}", err=True)


class DefaultCommandGroup(TyperGroup):
    """A group whose first argument falls back to a default command when it names none of its commands,
    so `modelforge runs [DIR]` keeps listing runs beside `modelforge runs compare A B`."""

    default_command = "list"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


runs_app = typer.Typer(
    rich_markup_mode=None,
    cls=DefaultCommandGroup,
    help="A table of runs (`runs [DIR]`), or runs side by side (`runs compare A B`).",
)
app.add_typer(runs_app, name="runs")


@runs_app.command(name="list")
def runs(directory: Annotated[Path, typer.Argument(help="folder of run directories")] = Path("runs")) -> None:
    """A table of runs with their key metrics."""
    from rich.console import Console
    from rich.table import Table

    from modelforge.runs import list_runs

    rows = list_runs(directory)
    if not rows:
        typer.echo(f"no runs in {directory}")
        return
    table = Table("run", "task", "model", "epochs", "metric", "value", "status")
    for row in rows:
        table.add_row(
            row["run"], row["task"], row["model"], str(row["epochs"]), row["metric"], row["value"], row["status"]
        )
    Console().print(table)


@app.command()
def models() -> None:
    """The registered model types, with the data they accept."""
    from modelforge.models.registry import MODELS, load_families

    load_families()
    for name in MODELS.names():
        entry = MODELS.get(name)
        fused = [kind for kind in entry.fuses if kind not in entry.accepts]
        accepts = "/".join(entry.accepts) + (f" (+ {'/'.join(fused)})" if fused else "")
        typer.echo(f"{name:<18} {accepts:<34} {entry.description}")


@app.command()
def tasks() -> None:
    """The registered tasks, with the verbs their runs support."""
    from modelforge.tasks import RUN_VERBS, TASKS

    for name in TASKS.names():
        task = TASKS.get(name)
        typer.echo(f"{name:<18} {task.summary}")
        typer.echo(f"{'':<18} verbs: train, audit, runs, {', '.join(v for v in RUN_VERBS if task.supports(v))}")


# Verbs of later stages live beside their code: each module has `register(app)` and imports
# only typer at module level, so adding a verb touches one line here.
VERB_MODULES = [
    "modelforge.tune.cli",
    "modelforge.serve.cli",
    "modelforge.compress.cli",
    "modelforge.export.cli",
    "modelforge.evaluate.cli",
    "modelforge.text.cli",
    "modelforge.finetune.cli",
    "modelforge.datasets.cli",
]


def _register_verbs() -> None:
    import importlib

    for name in VERB_MODULES:
        importlib.import_module(name).register(app)


_register_verbs()


# Exit codes (README, "Bad input"): 2 for input modelforge refuses (a ModelforgeError); 74, sysexits'
# EX_IOERR, for a file the system would not read or write (no permission, not a folder, disk full).
EXIT_BAD_INPUT = 2
EXIT_IO_ERROR = 74


def _warning_line(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    """warnings.showwarning for the terminal: the sentence, not the Python source line that warned."""
    typer.echo(f"warning: {message}", err=True)


def _os_error_line(exc: OSError) -> str:
    """`PATH: reason` from an OSError, as `ls` or `cp` would say it."""
    reason = exc.strerror or str(exc) or exc.__class__.__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


def main() -> None:
    import warnings

    from modelforge.errors import ModelforgeError

    warnings.showwarning = _warning_line
    try:
        app()
    except ModelforgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as exc:
        typer.echo(f"error: {_os_error_line(exc)}", err=True)
        sys.exit(EXIT_IO_ERROR)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a clean stop on SIGTERM / SIGINT after saving a checkpoint
        from modelforge.training.interrupt import TrainingInterrupted

        if not isinstance(exc, TrainingInterrupted):
            raise
        typer.echo(f"{exc}; continue with: modelforge train CONFIG --resume RUN_DIR", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
