"""A study end to end through the CLI, killed mid-trial and resumed: run directories, trials.csv,
best.yaml, plots, the summary, and `--trials N` as the study's total."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tune_configs import modelforge, write_config

from modelforge.config import load_config
from modelforge.tune.study import plan_study, run_study


def read_trials(study_dir: Path) -> list[dict[str, str]]:
    with open(study_dir / "trials.csv") as file:
        return list(csv.DictReader(file))


def start_and_kill_in_trial_1(args: list[str], study_dir: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "modelforge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    in_trial_1 = study_dir / "trials" / "0001.log"  # opened as trial 1 starts, before its data is read
    deadline = time.monotonic() + 300
    while not in_trial_1.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert in_trial_1.exists(), f"trial 1 never started: {process.stderr.read().decode() if process.stderr else ''}"
    assert not (study_dir / "trials" / "0001" / "model.json").exists(), "trial 1 finished before the kill"


def test_three_trial_study_killed_and_resumed(breast_cancer_csv: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, breast_cancer_csv)
    study_dir = tmp_path / "study"
    args = ["tune", str(config), "--out", str(study_dir), "--set", "train.epochs=2"]
    start_and_kill_in_trial_1(args, study_dir)
    first_run = study_dir / "trials" / "0000" / "model.safetensors"
    first_run_written = first_run.stat().st_mtime_ns

    result = modelforge(*args)  # the same command resumes: trial 0 kept, 1 retried, one more to reach 3
    assert result.returncode == 0, result.stderr
    rows = read_trials(study_dir)
    assert [(r["number"], r["state"]) for r in rows] == [
        ("0", "complete"),
        ("1", "fail"),
        ("2", "complete"),
        ("3", "complete"),
    ]
    assert rows[1]["note"] == "killed or interrupted; retried"
    assert rows[2]["note"] == "retry of 1"
    assert rows[2]["params.train.lr"] == rows[1]["params.train.lr"]  # the killed trial's point, run again
    assert first_run.stat().st_mtime_ns == first_run_written  # trial 0 was not redone
    assert "trial   0" not in result.stdout and "trial   2" in result.stdout and "trial   3" in result.stdout

    complete = [r for r in rows if r["state"] == "complete"]
    for row in complete:  # every trial is a normal, finished run directory with the --set applied
        run_dir = study_dir / "trials" / f"{int(row['number']):04d}"
        assert (run_dir / "model.json").is_file()
        assert load_config(run_dir / "config.yaml").train.epochs == 2
    for plot in ("history.html", "importance.html", "parallel.html"):
        assert (study_dir / "plots" / plot).stat().st_size > 1000
    best = max(complete, key=lambda r: float(r["valid_accuracy"]))
    assert f"best: trial {best['number']}" in result.stdout
    best_config = load_config(study_dir / "best.yaml")  # ready to `modelforge train`
    assert best_config.tune is None and best_config.train.epochs == 2
    assert best_config.train.lr == float(best["params.train.lr"])
    assert str(best_config.model.options()["hidden"]).replace(" ", "") == best["params.model.hidden"].replace(" ", "")

    summary = modelforge("tune", "--summary", str(study_dir))
    assert summary.returncode == 0, summary.stderr
    assert f"best: trial {best['number']}" in summary.stdout
    assert "trials: 4 (3 complete, 1 fail)" in summary.stdout

    # the same total again has nothing left to do; a larger --trials adds the difference
    plan, _ = plan_study(config, ["train.epochs=2"], out=study_dir)
    assert len(run_study(plan).trials) == 4
    plan, _ = plan_study(config, ["train.epochs=2"], out=study_dir, trials=4)
    assert [t.state.name for t in run_study(plan).trials] == ["COMPLETE", "FAIL"] + ["COMPLETE"] * 3


def test_summary_of_a_folder_without_a_study_exits_2(tmp_path: Path) -> None:
    result = modelforge("tune", "--summary", str(tmp_path))
    assert result.returncode == 2
    message = f"error: {tmp_path}: not a study directory (no study.json); run modelforge tune first"
    assert result.stderr.strip() == message


def test_the_breast_cancer_example_tunes_as_shipped(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.yaml"
    plan, params = plan_study(example, ["train.epochs=1"], out=tmp_path / "study", trials=1)
    assert {"train.lr", "model.hidden"} <= {p.path for p in params}
    assert [t.state.name for t in run_study(plan).trials] == ["COMPLETE"]
