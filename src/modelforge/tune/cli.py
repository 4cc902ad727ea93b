"""The `modelforge tune` verb (typer and stdlib only at import: `modelforge --help` stays fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def tune(
    config: Annotated[Path | None, typer.Argument(help="YAML config with a tune section")] = None,
    trials: Annotated[int | None, typer.Option(help="total trials of the study (default: tune.trials)")] = None,
    sampler: Annotated[str | None, typer.Option(help="grid | random | tpe | cmaes (default: tune.sampler)")] = None,
    pruner: Annotated[str | None, typer.Option(help="none | median | hyperband (default: tune.pruner)")] = None,
    jobs: Annotated[int, typer.Option(help="worker processes sharing the storage")] = 1,
    storage: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: sqlite in the study dir)")] = None,
    study: Annotated[str | None, typer.Option(help="study name (default: config name or file stem)")] = None,
    out: Annotated[Path | None, typer.Option(help="study directory (default: studies/STUDY)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a config key for every trial: train.epochs=5")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option("--summary", help="print the trials table and best trial of STUDY_DIR")
    ] = None,
) -> None:
    """Search hyperparameters (tune.space) with Optuna; re-running resumes the study."""
    from modelforge.errors import ModelforgeError
    from modelforge.tune.summary import load_study_dir, print_summary

    if summary is not None:
        loaded, record = load_study_dir(summary, storage)
        print_summary(loaded, record["metric"], echo=typer.echo)
        return
    if config is None:
        raise ModelforgeError("tune: give a CONFIG to search, or --summary STUDY_DIR")
    from modelforge.tune.study import plan_study, run_study

    plan, _ = plan_study(
        config,
        set_ or [],
        out=out,
        study=study,
        storage=storage,
        trials=trials,
        sampler=sampler,
        pruner=pruner,
        jobs=jobs,
    )
    typer.echo(
        f"study {plan.name}: {plan.trials} trials, {plan.sampler} sampler, {plan.pruner} pruner, "
        f"{plan.jobs} worker(s), {plan.direction} {plan.metric}; dir {plan.out}",
        err=True,
    )
    finished = run_study(plan)
    print_summary(finished, plan.metric, echo=typer.echo)
    typer.echo(f"study: {plan.out} (trials.csv, best.yaml, plots/)")


def register(app: typer.Typer) -> None:
    app.command(name="tune")(tune)
