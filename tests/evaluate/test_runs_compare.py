"""`modelforge runs compare A B`: metrics side by side, config differences, overlaid curves; `runs DIR` lists."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from insight_runs import modelforge_cli

from modelforge.errors import RunError
from modelforge.evaluate.compare import read_summary


def test_compare_two_runs_with_overlaid_curves(classifier_run: Any, one_column_run: Any, tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    result = modelforge_cli("runs", "compare", str(classifier_run.path), str(one_column_run.path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "classifier" in result.stdout and "one_column" in result.stdout
    assert "accuracy" in result.stdout and "f1" in result.stdout
    assert "config differences" in result.stdout and "train.epochs" in result.stdout
    html = out.read_text()
    assert "data:image/png;base64," in html and "Config differences" in html


def test_runs_without_subcommand_still_lists_a_folder(classifier_run: Any, tmp_path: Path) -> None:
    shutil.copytree(classifier_run.path, tmp_path / "first")
    result = modelforge_cli("runs", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "first" in result.stdout and "accuracy" in result.stdout


def test_compare_needs_two_runs(classifier_run: Any, tmp_path: Path) -> None:
    one = modelforge_cli("runs", "compare", str(classifier_run.path))
    assert one.returncode == 2 and "needs two or more run directories" in one.stderr
    with pytest.raises(RunError, match="not a run directory"):
        read_summary(tmp_path)


def test_config_differences_name_only_what_differs() -> None:
    from modelforge.evaluate.compare import RunSummary, config_differences

    def summary(name: str, lr: float, feature: dict[str, Any]) -> RunSummary:
        config = {"train": {"lr": lr}, "data": {"features": [feature]}}
        return RunSummary(name=name, path=Path(name), config=config, metrics={}, history=[])

    # the same feature with its keys in another order: only train.lr differs (it used to report features too)
    a = summary("a", 1e-3, {"name": "x", "kind": "numeric"})
    b = summary("b", 3e-3, {"kind": "numeric", "name": "x"})
    assert [row["key"] for row in config_differences([a, b])] == ["train.lr"]


def test_row_counts_are_not_plotted_as_validation_metrics() -> None:
    from modelforge.evaluate.compare import RunSummary, curve_keys
    from modelforge.evaluate.curves import is_validation_metric

    # a MovieLens epoch row: valid_n (rows scored) used to share the RMSE axis
    row = {"epoch": 1, "train_loss": 0.9, "valid_rmse": 0.95, "valid_n": 10_000, "lr": 1e-3}
    assert [key for key in row if is_validation_metric(key)] == ["valid_rmse"]
    summaries = [RunSummary(name, Path(name), {}, {}, [row]) for name in ("a", "b")]
    assert curve_keys(summaries) == ["train_loss", "valid_rmse"]
