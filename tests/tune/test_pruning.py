"""Pruners act on the per-epoch metric the training loop reports."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
from tune_configs import BASE_CONFIG, write_config

from modelforge.tune.study import plan_study, run_study


def test_median_pruner_stops_a_trial_worse_than_the_median_after_one_epoch(
    breast_cancer_csv: Path, tmp_path: Path
) -> None:
    tune = {**BASE_CONFIG["tune"], "metric": "valid_loss", "pruner": "median", "warmup_epochs": 0, "trials": 6}
    config = write_config(tmp_path, breast_cancer_csv, tune=tune)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    plan, params = plan_study(config, [], out=tmp_path / "study", storage=storage, study="pruned")

    # five finished trials that reached a perfect validation loss at every epoch: the median to beat
    study = optuna.create_study(study_name="pruned", storage=storage, direction="minimize")
    distributions = {p.path: p.distribution() for p in params}
    point = {"train.lr": 1e-3, "model.hidden": "[16]", "model.dropout": 0.0}
    for _ in range(5):
        trial = optuna.trial.create_trial(
            params=point, distributions=distributions, value=0.0, intermediate_values={1: 0.0, 2: 0.0, 3: 0.0}
        )
        study.add_trial(trial)

    finished = run_study(plan)  # one real trial to reach the total of 6
    real = finished.trials[-1]
    assert real.state == optuna.trial.TrialState.PRUNED
    assert list(real.intermediate_values) == [1] and real.intermediate_values[1] > 0.0
    run_dir = Path(real.user_attrs["run_dir"])
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1  # stopped after epoch 1
    assert not (run_dir / "model.json").exists()
    with open(tmp_path / "study" / "trials.csv") as file:
        rows = list(csv.DictReader(file))
    assert rows[-1]["state"] == "pruned" and rows[-1]["note"] == "pruned at epoch 1"
