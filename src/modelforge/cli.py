"""The `modelforge` command line. Each verb is a thin call into its stage package.

Imports of torch and friends happen inside the verbs, so `modelforge --help` is instant.
Any ModelforgeError becomes one line on stderr and exit code 2.
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
        from modelforge.train.launch import run_torchrun

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
    typer.echo(f"run: {run.path}")


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[Path | None, typer.Option(help="labelled data (default: the run's saved test metrics)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Metrics of a trained run on labelled data."""
    from modelforge.run import load_run
    from modelforge.tasks import task_of_run

    task = task_of_run(run, "evaluate")
    loaded = load_run(run)
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
) -> None:
    """Predictions for new rows: label and class probabilities, or the value."""
    from modelforge.files import atomic_write_text
    from modelforge.run import load_run

    if engine not in ("torch", "onnx"):
        from modelforge.errors import ModelforgeError

        raise ModelforgeError(f"--engine: expected torch or onnx, got {engine!r}")
    from modelforge.tasks import task_of_run

    task_of_run(run, "predict")
    if engine == "onnx":
        from modelforge.export.onnx import load_onnx_predictor

        frame = load_onnx_predictor(run).predict(data)
    else:
        frame = load_run(run).predict(data)
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
]


def _register_verbs() -> None:
    import importlib

    for name in VERB_MODULES:
        importlib.import_module(name).register(app)


_register_verbs()


def main() -> None:
    from modelforge.errors import ModelforgeError

    try:
        app()
    except ModelforgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a clean stop on SIGTERM / SIGINT after saving a checkpoint
        from modelforge.train.interrupt import TrainingInterrupted

        if not isinstance(exc, TrainingInterrupted):
            raise
        typer.echo(f"{exc}; continue with: modelforge train CONFIG --resume RUN_DIR", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
