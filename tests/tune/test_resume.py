"""Killing `modelforge tune` mid-trial and re-running finishes only the missing trials."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import modelforge, write_config


def test_kill_and_rerun_finishes_only_the_remaining_trials(breast_cancer_csv: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, breast_cancer_csv)
    study_dir = tmp_path / "study"
    args = ["tune", str(config), "--out", str(study_dir)]
    process = subprocess.Popen(
        [sys.executable, "-m", "modelforge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    in_trial_1 = study_dir / "trials" / "0001.log"  # opened as trial 1 starts, before its data is read
    deadline = time.monotonic() + 300
    while not in_trial_1.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert in_trial_1.exists(), "trial 1 never started"
    first_run = study_dir / "trials" / "0000" / "model.safetensors"
    first_run_written = first_run.stat().st_mtime_ns
    assert not (study_dir / "trials" / "0001" / "model.json").exists(), "trial 1 finished before the kill"

    result = modelforge("tune", *args[1:])
    assert result.returncode == 0, result.stderr
    with open(study_dir / "trials.csv") as file:
        rows = list(csv.DictReader(file))
    states = {r["number"]: r["state"] for r in rows}
    assert states == {"0": "complete", "1": "fail", "2": "complete", "3": "complete"}
    assert rows[1]["note"] == "killed or interrupted; retried"
    assert rows[2]["note"] == "retry of 1"
    assert rows[2]["params.train.lr"] == rows[1]["params.train.lr"]  # the killed trial's point, run again
    assert first_run.stat().st_mtime_ns == first_run_written  # trial 0 was not redone
    assert "trial   0" not in result.stdout and "trial   2" in result.stdout
