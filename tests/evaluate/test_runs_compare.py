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
