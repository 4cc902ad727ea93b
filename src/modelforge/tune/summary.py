"""What a study leaves behind: trials.csv, best.yaml, plots, and the printed table."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from modelforge.errors import ModelforgeError
from modelforge.files import atomic_write_text

PLOTS = {
    "history.html": "plot_optimization_history",
    "importance.html": "plot_param_importances",
    "parallel.html": "plot_parallel_coordinate",
}


def trial_rows(study: Any, metric: str) -> list[dict[str, Any]]:
    """One row per trial: number, state, metric, seconds, parameters, note."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        value = trial.value if trial.state.name == "COMPLETE" else _last_reported(trial)
        seconds = trial.duration.total_seconds() if trial.duration is not None else None
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name.lower(),
            metric: None if value is None else round(float(value), 6),
            "seconds": None if seconds is None else round(seconds, 2),
        }
        row.update({f"params.{k}": v for k, v in trial.params.items()})
        row["note"] = _note(trial)
        rows.append(row)
    return rows


def _last_reported(trial: Any) -> float | None:
    steps = trial.intermediate_values
    return steps[max(steps)] if steps else None


def _note(trial: Any) -> str:
    attrs = trial.user_attrs
    if "error" in attrs:
        return str(attrs["error"])
    if "retry_of" in attrs:
        return f"retry of {attrs['retry_of']}"
    if trial.state.name == "FAIL":
        return "killed or interrupted; retried"
    if trial.state.name == "PRUNED" and trial.intermediate_values:
        return f"pruned at epoch {max(trial.intermediate_values)}"
    return ""


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    if "note" in columns:
        columns.append(columns.pop(columns.index("note")))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def best_trial(study: Any) -> Any | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def write_reports(study: Any, plan: Any, plots: bool) -> list[Path]:
    """trials.csv and best.yaml (after every trial), plots (at the end of a run)."""
    study_dir = Path(plan.out)
    written = [study_dir / "trials.csv"]
    atomic_write_text(written[0], rows_to_csv(trial_rows(study, plan.metric)))
    best = best_trial(study)
    if best is not None and "config" in best.user_attrs:
        header = (
            f"# best trial {best.number} of study {plan.name}: {plan.metric} {best.value:.6g}\n"
            f"# ready to train: modelforge train {study_dir / 'best.yaml'}\n"
        )
        atomic_write_text(study_dir / "best.yaml", header + best.user_attrs["config"])
        written.append(study_dir / "best.yaml")
    if plots:
        written.extend(write_plots(study, study_dir / "plots"))
    return written


def write_plots(study: Any, folder: Path) -> list[Path]:
    """Optuna's plotly figures as HTML; a plot that needs more trials is skipped."""
    import warnings

    try:
        import optuna.visualization as visualization
    except ImportError:
        return []
    if not visualization.is_available():
        return []
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, function in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = getattr(visualization, function)(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importance needs two complete trials with differing parameters
        # plotly.js is written once beside the pages, so they open without a network
        figure.write_html(folder / filename, include_plotlyjs="directory")
        written.append(folder / filename)
    return written


# ----------------------------------------------------------------------------- printing
def load_study_dir(study_dir: Path, storage: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The study recorded in STUDY_DIR/study.json (storage from --storage when its password was hidden)."""
    import optuna

    from modelforge.tune.storage import open_storage

    record_path = study_dir / "study.json"
    if not record_path.is_file():
        raise ModelforgeError(f"{study_dir}: not a study directory (no study.json); run modelforge tune first")
    record = json.loads(record_path.read_text())
    url = storage or record["storage"]
    if "***" in url:
        raise ModelforgeError(f"{record_path}: the storage password is not saved; pass --storage URL")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=record["name"], storage=open_storage(url))
    except KeyError:
        raise ModelforgeError(f"{study_dir}: study {record['name']!r} is not in its storage") from None
    return study, record


def print_summary(study: Any, metric: str, echo: Any = print) -> None:
    """The trials table and the best trial, as `modelforge tune` ends and `--summary` shows."""
    from rich.console import Console
    from rich.table import Table

    rows = trial_rows(study, metric)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    if "note" in columns:
        columns.append(columns.pop(columns.index("note")))
    table = Table(*[c.removeprefix("params.") for c in columns], title=f"study {study.study_name}")
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    Console(width=200).print(table)
    best = best_trial(study)
    states = [r["state"] for r in rows]
    counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    echo(f"trials: {len(rows)} ({counts})")
    if best is None:
        echo("best: no complete trial yet")
        return
    params = "  ".join(f"{k}={v}" for k, v in best.params.items())
    echo(f"best: trial {best.number}  {metric} {best.value:.6g}  {params}")
    if "run_dir" in best.user_attrs:
        echo(f"best run: {best.user_attrs['run_dir']}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)
