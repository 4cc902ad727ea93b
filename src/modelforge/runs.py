"""`modelforge runs`: read run directories into rows for a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from modelforge.files import read_jsonl


def key_metric(task: str, evaluation: dict[str, Any]) -> str:
    """The first of the task's key metrics that the run's eval.json has (else its first); a key ending
    in "@" stands for any cut-off (`ndcg@` matches `ndcg@10`)."""
    from modelforge.tasks import TASKS

    if task not in TASKS:
        return ""
    keys = TASKS.get(task).key_metrics
    for key in keys:
        for name, value in evaluation.items():
            if (name == key or (key.endswith("@") and name.startswith(key))) and isinstance(value, int | float):
                return str(name)
    return keys[0]


def list_runs(directory: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(p for p in directory.iterdir() if p.is_dir()) if directory.is_dir() else []:
        config_path = path / "config.yaml"
        if not config_path.exists():
            continue
        try:
            config = yaml.safe_load(config_path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError):  # not a run this version can list (or not a run)
            continue
        task = str(config.get("task", "?"))
        evaluation = json.loads((path / "eval.json").read_text()) if (path / "eval.json").exists() else {}
        metric = key_metric(task, evaluation)
        value = evaluation.get(metric)
        rows.append(
            {
                "run": path.name,
                "task": task,
                "model": str((config.get("model") or {}).get("type", "?")),
                "epochs": len(read_jsonl(path / "metrics.jsonl")),
                "metric": metric,
                "value": f"{value:.4f}" if isinstance(value, int | float) else "-",
                "status": "finished" if (path / "model.json").exists() else "incomplete",
            }
        )
    return rows
