"""CLI verbs of the insight stage: `report`, `explain`, `audit` and `runs compare`.

Only typer and the standard library are imported here; the work happens in the stage modules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from modelforge.errors import ModelforgeError


def report(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[Path | None, typer.Option(help="labelled rows (default: the run's test split)")] = None,
    slice_by: Annotated[
        list[str] | None, typer.Option("--slice-by", help="column to break metrics down by (repeatable)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: RUN/report.html)")] = None,
    prompt: Annotated[
        list[str] | None, typer.Option("--prompt", help="language models: prompt for a sample (repeatable)")
    ] = None,
    explain: Annotated[bool, typer.Option(help="include attributions (Integrated Gradients)")] = True,
) -> None:
    """One self-contained HTML report: curves, errors, explanations, slices, model card."""
    from modelforge.evaluate.report import write_report

    target = write_report(
        run, out, data=data, slice_by=slice_by or [], prompts=prompt or ["\n", "The "], explain=explain
    )
    typer.echo(f"wrote {target}")


def parse_rows(text: str) -> list[int]:
    """'0,5,9' or '0-4,9' → [0, 5, 9] / [0, 1, 2, 3, 4, 9]."""
    rows: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "-" in part[1:]:
                start, end = part.split("-", 1)
                rows.extend(range(int(start), int(end) + 1))
            else:
                rows.append(int(part))
    except ValueError:
        raise ModelforgeError(f"--rows: expected row numbers like 0,5,9 or 0-4, got {text!r}") from None
    if not rows:
        raise ModelforgeError("--rows: no rows given")
    return rows


def explain(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[Path, typer.Option(help="rows to explain (csv/parquet/jsonl/npz/image folder)")],
    rows: Annotated[str, typer.Option(help="row numbers from 0: 0,5,9 or 0-4")] = "0-4",
    method: Annotated[str, typer.Option(help="ig | saliency | occlusion")] = "ig",
    out: Annotated[Path | None, typer.Option(help="folder for the output (default: RUN/explain)")] = None,
    steps: Annotated[int, typer.Option(help="Integrated Gradients steps")] = 64,
    target_class: Annotated[str | None, typer.Option(help="class to explain (default: the predicted one)")] = None,
    top: Annotated[int, typer.Option(help="features / tokens printed per row")] = 5,
) -> None:
    """Which inputs drove each prediction: per column, per token, or as image heat-maps."""
    if steps < 1:
        raise ModelforgeError(f"--steps: must be ≥ 1, got {steps}")
    row_numbers = parse_rows(rows)  # before the heavy imports: a typo fails at once
    from modelforge.tasks import load_entry, task_of_run

    explain_rows = load_entry(task_of_run(run, "explain").explain)  # the task's own explainer
    folder, explanations, lines = explain_rows(
        run, data, row_numbers, method, out, steps=steps, explained_class=target_class, top=top
    )
    for line in lines:
        typer.echo(line)
    typer.echo(f"wrote {folder / 'attributions.json'} and {folder / 'index.html'} ({len(explanations)} rows)")


def audit(
    run: Annotated[Path, typer.Argument(help="run directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Provenance of a run, and a check that its files still match their recorded hashes (exit 1 if not)."""
    from modelforge.evaluate.audit import audit_run, format_audit

    result = audit_run(run)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        typer.echo(format_audit(result))
    if not result.passed:
        raise typer.Exit(1)


def compare(
    runs: Annotated[list[Path], typer.Argument(help="two or more run directories")],
    out: Annotated[Path | None, typer.Option(help="HTML file with the overlaid learning curves")] = None,
) -> None:
    """Metrics side by side, config differences, and (with --out) overlaid learning curves."""
    from rich.console import Console
    from rich.table import Table

    from modelforge.evaluate.compare import (
        compare_html,
        config_differences,
        metric_rows,
        read_summary,
        unique_names,
    )

    if len(runs) < 2:
        raise ModelforgeError(f"runs compare: needs two or more run directories, got {len(runs)}")
    summaries = [read_summary(path) for path in runs]
    unique_names(summaries)
    names = [s.name for s in summaries]
    console = Console()
    metrics = Table("metric", *names, title="metrics")
    for row in metric_rows(summaries):
        metrics.add_row(row["metric"], *(_cell(row[name]) for name in names))
    console.print(metrics)
    differences = config_differences(summaries)
    if differences:
        config = Table("config key", *names, title="config differences")
        for row in differences:
            config.add_row(row["key"], *(row[name] for name in names))
        console.print(config)
    if out is not None:
        from modelforge.files import atomic_write_text

        atomic_write_text(out, compare_html(summaries))
        typer.echo(f"wrote {out}")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def register(app: typer.Typer) -> None:
    app.command(name="report")(report)
    app.command(name="explain")(explain)
    app.command(name="audit")(audit)
    runs_group = next((g.typer_instance for g in app.registered_groups if g.name == "runs"), None)
    if runs_group is not None:
        runs_group.command(name="compare")(compare)
