"""task: recommendation through the CLI: train prints the ranking or rating metrics; predict and
evaluate work on the run; bad input ends in exit code 2 with one line."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import modelforge
from modelforge.errors import DataError


def modelforge_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelforge", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_train_predict_evaluate_and_bad_input(
    recommend_config: Any, interactions: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "implicit.yaml"
    config.write_text(yaml.safe_dump(recommend_config("implicit", epochs=10)))
    trained = modelforge_cli("train", str(config), "--out", str(tmp_path / "run"), "--no-progress")
    assert trained.returncode == 0, trained.stderr
    summary = trained.stdout.splitlines()[0]
    assert summary.startswith("test: recall@10 ") and "ndcg@10" in summary and "popularity_ndcg@10" in summary

    users = tmp_path / "users.csv"
    pd.DataFrame({"user_id": ["u1", "u2", "newcomer"]}).to_csv(users, index=False)
    predicted = modelforge_cli("predict", str(tmp_path / "run"), "--data", str(users))
    assert predicted.returncode == 0, predicted.stderr
    top = pd.read_csv(io.StringIO(predicted.stdout))
    assert len(top) == 30 and top.groupby("user")["rank"].max().eq(10).all()
    assert (
        top.loc[top["user"] == "newcomer", "cold_start"].all() and not top.loc[top["user"] == "u1", "cold_start"].any()
    )

    evaluated = modelforge_cli("evaluate", str(tmp_path / "run"), "--data", str(interactions["ratings"]))
    assert evaluated.returncode == 0, evaluated.stderr
    assert "ndcg@10" in evaluated.stdout and "recall@10" in evaluated.stdout

    nameless = tmp_path / "nameless.csv"
    pd.DataFrame({"who": ["u1"]}).to_csv(nameless, index=False)
    failed = modelforge_cli("predict", str(tmp_path / "run"), "--data", str(nameless))
    assert failed.returncode == 2 and failed.stderr.strip().count("\n") == 0
    assert "'user_id' column" in failed.stderr and "Traceback" not in failed.stderr


def test_explicit_summary_and_a_missing_rating_column(recommend_config: Any, tmp_path: Path) -> None:
    settings = recommend_config(epochs=3)
    config = tmp_path / "explicit.yaml"
    config.write_text(yaml.safe_dump(settings))
    trained = modelforge_cli("train", str(config), "--out", str(tmp_path / "run"), "--no-progress")
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.startswith("test: rmse ") and "baseline_global_mean_rmse" in trained.stdout

    settings["recommend"]["rating"] = "score"
    with pytest.raises(DataError, match="column 'score' not in"):
        modelforge.train(settings, tmp_path / "bad")
