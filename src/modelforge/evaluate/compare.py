"""`modelforge runs compare`: metrics side by side, config differences, overlaid learning curves."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelforge.errors import RunError
from modelforge.evaluate.curves import is_validation_metric
from modelforge.files import read_jsonl

SKIPPED_METRICS = {"per_class", "confusion_matrix", "classes", "split"}


@dataclass
class RunSummary:
    name: str
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def read_summary(path: Path) -> RunSummary:
    if not (path / "config.yaml").is_file():
        raise RunError(f"{path}: not a run directory (no config.yaml)")
    config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    eval_path = path / "eval.json"
    metrics = json.loads(eval_path.read_text()) if eval_path.is_file() else {}
    return RunSummary(path.name, path, config, metrics, read_jsonl(path / "metrics.jsonl"))


def unique_names(summaries: list[RunSummary]) -> None:
    """Runs with the same folder name (in different parents) get their parent's name prepended."""
    names = [s.name for s in summaries]
    for summary in summaries:
        if names.count(summary.name) > 1:
            summary.name = f"{summary.path.parent.name}/{summary.name}"


def metric_rows(summaries: list[RunSummary]) -> list[dict[str, Any]]:
    """One row per numeric metric of any run: its value in each run (None where absent)."""
    keys: list[str] = []
    for summary in summaries:
        for key, value in summary.metrics.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and key not in SKIPPED_METRICS and key not in keys:
                keys.append(key)
    return [{"metric": key, **{s.name: s.metrics.get(key) for s in summaries}} for key in keys]


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def config_differences(summaries: list[RunSummary]) -> list[dict[str, Any]]:
    """The config keys whose values differ between the runs."""
    flat = [flatten(s.config) for s in summaries]
    keys = sorted({k for f in flat for k in f})
    rows = []
    for key in keys:
        values = [f.get(key) for f in flat]
        # both sides canonical: a list of feature mappings differs only in content, never in key order
        canonical = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if any(text != canonical[0] for text in canonical[1:]):
            shown = {s.name: json.dumps(v, default=str) for s, v in zip(summaries, values, strict=True)}
            rows.append({"key": key, **shown})
    return rows


def curve_keys(summaries: list[RunSummary]) -> list[str]:
    """Per-epoch metrics logged by every run: losses first, then validation metrics."""
    common = None
    for summary in summaries:
        keys = {k for row in summary.history for k, v in row.items() if isinstance(v, int | float)}
        common = keys if common is None else common & keys
    common = common or set()
    losses = sorted(k for k in common if k.endswith("loss"))
    metrics = sorted(k for k in common if is_validation_metric(k))
    return (losses + metrics)[:4]


def compare_html(summaries: list[RunSummary]) -> str:
    from modelforge.evaluate import plots
    from modelforge.evaluate.report import Section, image, note, render_page, table

    names = [s.name for s in summaries]
    sections = [Section("metrics", "Metrics", table(metric_rows(summaries), ["metric", *names]))]
    differences = config_differences(summaries)
    sections.append(
        Section("config", "Config differences", table(differences, ["key", *names]) if differences else note("none"))
    )
    keys = curve_keys(summaries)
    histories = {s.name: s.history for s in summaries}
    curves = image(plots.overlaid_curves(histories, keys), "overlaid curves") if keys else note("no common curves")
    sections.append(Section("curves", "Learning curves", curves))
    subtitle = f"{len(summaries)} runs · generated {time.strftime('%Y-%m-%d %H:%M')}"
    return render_page("modelforge runs compare: " + " vs ".join(names), subtitle, sections)
