"""A study end to end through the CLI: trials as run directories, trials.csv, best.yaml, plots, summary."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import modelforge, write_config

from modelforge.config import load_config
from modelforge.tune.study import plan_study, run_study


def read_trials(study_dir: Path) -> list[dict[str, str]]:
    with open(study_dir / "trials.csv") as file:
        return list(csv.DictReader(file))


def test_three_trial_study_end_to_end(breast_cancer_csv: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, breast_cancer_csv)
    study_dir = tmp_path / "study"
    result = modelforge("tune", str(config), "--out", str(study_dir), "--set", "train.epochs=2")
    assert result.returncode == 0, result.stderr

    rows = read_trials(study_dir)
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert {r["state"] for r in rows} == {"complete"}
    assert set(rows[0]) >= {"valid_accuracy", "params.train.lr", "params.model.hidden", "params.model.dropout"}
    for number in range(3):  # every trial is a normal, finished run directory with the --set applied
        run_dir = study_dir / "trials" / f"{number:04d}"
        assert (run_dir / "model.json").is_file()
        assert load_config(run_dir / "config.yaml").train.epochs == 2
    for plot in ("history.html", "importance.html", "parallel.html"):
        assert (study_dir / "plots" / plot).stat().st_size > 1000
    assert "best: trial" in result.stdout and "valid_accuracy" in result.stdout

    best = max(rows, key=lambda r: float(r["valid_accuracy"]))
    best_config = load_config(study_dir / "best.yaml")  # ready to `modelforge train`
    assert best_config.tune is None
    assert best_config.train.lr == float(best["params.train.lr"])
    assert str(best_config.model.options()["hidden"]).replace(" ", "") == best["params.model.hidden"].replace(" ", "")

    summary = modelforge("tune", "--summary", str(study_dir))
    assert summary.returncode == 0, summary.stderr
    assert f"best: trial {best['number']}" in summary.stdout
    assert "trials: 3 (3 complete)" in summary.stdout

    # the same command again has nothing left to do; a larger --trials adds the difference
    plan, _ = plan_study(config, ["train.epochs=2"], out=study_dir)
    assert len(run_study(plan).trials) == 3
    plan, _ = plan_study(config, ["train.epochs=2"], out=study_dir, trials=4)
    assert [t.state.name for t in run_study(plan).trials] == ["COMPLETE"] * 4


def test_summary_of_a_folder_without_a_study_exits_2(tmp_path: Path) -> None:
    result = modelforge("tune", "--summary", str(tmp_path))
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"error: {tmp_path}: not a study directory (no study.json); run modelforge tune first"
    )
