"""Tracking options and the launcher's input checks: MLflow to a local store, `--nproc` with a bad config."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_runs import mlp_config, run_cli, write_config

from modelforge.config import load_config
from modelforge.training.recipe import train


def test_mlflow_logs_params_and_epoch_metrics_to_a_local_store(
    tmp_path: Path, breast_cancer_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'modelforge[mlflow]')")
    from mlflow.tracking import MlflowClient

    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MODELFORGE_MLFLOW_URI", store)
    run = train(load_config(mlp_config(breast_cancer_csv, epochs=2)), tmp_path / "tracked", show_progress=False)

    client = MlflowClient(store)
    [logged] = client.search_runs(["0"])
    assert logged.info.run_name == "tracked" and logged.info.status == "FINISHED"
    assert logged.data.params["train.lr"] == "0.003" and logged.data.params["model.type"] == "mlp"
    history = client.get_metric_history(logged.info.run_id, "valid_loss")
    assert [(m.step, m.value) for m in history] == [(row["step"], row["valid_loss"]) for row in run.history]


def test_nproc_with_a_bad_config_exits_2_before_starting_torchrun(tmp_path: Path, breast_cancer_csv: Path) -> None:
    raw = mlp_config(breast_cancer_csv)
    raw["train"]["lrr"] = 0.1
    config = write_config(tmp_path / "bad.yaml", raw)
    result = run_cli("train", str(config), "--nproc", "2", "--out", str(tmp_path / "run"), timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "train.lrr" in lines[0], result.stderr
    assert "torch.distributed" not in result.stderr and not (tmp_path / "run").exists()
