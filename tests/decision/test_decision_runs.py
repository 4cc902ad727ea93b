"""A run with `decision:` tunes its threshold on the validation split, saves it, and every verb uses it:
evaluate --json, predict (and --threshold), serve."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_runner import modelforge_in_process
from modelforge.config import load_config
from modelforge.decision import DECISION_FILE, tune_threshold
from modelforge.run import load_run
from modelforge.training.recipe import load_splits

USUAL_KEYS = {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "per_class", "confusion_matrix"}
DECISION_KEYS = {
    "threshold",
    "average_precision",
    "at_0_5",
    "brier",
    "ece",
    "flag_rate",
    "expected_cost",
    "recall_at_precision",
    "precision_at_recall",
    "positive",
}


def split_of(run_dir: Path, name: str) -> pd.DataFrame:
    train, valid, test = load_splits(load_config(run_dir / "config.yaml"))
    return {"train": train, "valid": valid, "test": test}[name]


def test_threshold_is_tuned_on_validation_rows_and_saved_with_the_run(flag_rate_run: Path) -> None:
    saved = json.loads((flag_rate_run / DECISION_FILE).read_text())
    assert DECISION_FILE in json.loads((flag_rate_run / "files.json").read_text())["files"]
    run = load_run(flag_rate_run)
    valid = split_of(flag_rate_run, "valid")
    probabilities = run.decision.calibrated(run.outputs(run._prepare(valid)))
    positive = saved["positive_index"]
    threshold, figures = tune_threshold(valid["label"] == "fraud", probabilities[:, positive], {"max_flag_rate": 0.1})
    assert saved["positive"] == "fraud" and saved["threshold"] == pytest.approx(threshold)
    assert saved["validation"]["flag_rate"] == pytest.approx(figures["flag_rate"])
    assert figures["flag_rate"] <= 0.1
    assert "P(fraud) ≥" in saved["rule"]


def test_evaluate_json_reports_the_saved_threshold_and_the_0_5_cut(flag_rate_run: Path, tmp_path: Path) -> None:
    test_rows = split_of(flag_rate_run, "test")
    test_rows.to_csv(tmp_path / "test.csv", index=False)
    result = modelforge_in_process("evaluate", str(flag_rate_run), "--data", str(tmp_path / "test.csv"), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) >= USUAL_KEYS | DECISION_KEYS
    assert metrics["threshold"] == pytest.approx(json.loads((flag_rate_run / DECISION_FILE).read_text())["threshold"])
    assert set(metrics["at_0_5"]) >= {"accuracy", "precision", "recall", "f1", "flag_rate"}
    # the tuned threshold flags more rows than the 0.5 cut and catches more of the rare class
    assert metrics["flag_rate"] > metrics["at_0_5"]["flag_rate"]
    assert metrics["positive"]["recall"] > metrics["at_0_5"]["per_class"]["fraud"]["recall"]
    saved = load_run(flag_rate_run).metrics  # eval.json: the same figures on the same test split
    assert saved["threshold"] == metrics["threshold"] and saved["recall"] == pytest.approx(metrics["recall"])


def test_plain_binary_run_reports_the_curve_metrics_at_0_5(plain_run: Path) -> None:
    metrics = load_run(plain_run).metrics
    assert metrics["threshold"] == 0.5 and "at_0_5" not in metrics
    assert 0 < metrics["average_precision"] <= 1 and 0 <= metrics["ece"] < 1
    assert not (plain_run / DECISION_FILE).exists()


def test_predict_applies_the_saved_threshold_and_threshold_overrides_it(flag_rate_run: Path, tmp_path: Path) -> None:
    rows = split_of(flag_rate_run, "test").drop(columns=["label"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    run = load_run(flag_rate_run)
    predicted = run.predict(rows)
    flagged = predicted["probability_fraud"] >= run.decision.threshold
    assert (predicted["prediction"] == np.where(flagged, "fraud", "ok")).all()
    assert (predicted["prediction"] != np.where(predicted["probability_fraud"] >= 0.5, "fraud", "ok")).any()

    def cli_flags(*extra: str) -> pd.Series:
        result = modelforge_in_process("predict", str(flag_rate_run), "--data", str(tmp_path / "rows.csv"), *extra)
        assert result.returncode == 0, result.stderr
        return pd.read_csv(io.StringIO(result.stdout))["prediction"] == "fraud"

    assert (cli_flags() == flagged).all()
    assert (cli_flags("--threshold", "0.9") == (predicted["probability_fraud"] >= 0.9)).all()
    assert cli_flags("--threshold", "0").all()


def test_serve_answers_with_the_saved_threshold(flag_rate_run: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from modelforge.serve.app import create_app
    from modelforge.serve.services import load_services

    rows = split_of(flag_rate_run, "test").drop(columns=["label"]).head(200)
    expected = load_run(flag_rate_run).predict(rows)
    with TestClient(create_app(load_services([f"fraud={flag_rate_run}"]))) as client:
        answer = client.post("/v1/models/fraud/predict", json={"records": rows.to_dict(orient="records")})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["label"] for p in predictions] == expected["prediction"].tolist()
    served = [p["probabilities"]["fraud"] for p in predictions]
    np.testing.assert_allclose(served, expected["probability_fraud"], atol=1e-5)


def test_report_shows_the_decision_curves_and_states_the_rule(flag_rate_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from modelforge.evaluate.report import write_report

    html = write_report(flag_rate_run, tmp_path / "report.html", explain=False).read_text()
    for alt in ("precision-recall curve with operating point", "trade-off", "reliability before and after calibration"):
        assert f"alt='{alt}'" in html or f'alt="{alt}"' in html, alt
    assert "Decision: flagging fraud" in html and "Decision rule" in html
    assert "P(fraud) ≥" in html and "before calibration" in html


def test_predict_with_the_onnx_engine_applies_the_same_decision(flag_rate_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(flag_rate_run, run_dir)
    exported = modelforge_in_process("export", str(run_dir), "--format", "onnx")
    assert exported.returncode == 0, exported.stderr
    rows = split_of(flag_rate_run, "test").drop(columns=["label"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    answers = {}
    for engine in ("torch", "onnx"):
        result = modelforge_in_process(
            "predict", str(run_dir), "--data", str(tmp_path / "rows.csv"), "--engine", engine
        )
        assert result.returncode == 0, result.stderr
        answers[engine] = pd.read_csv(io.StringIO(result.stdout))
    assert (answers["onnx"]["prediction"] == answers["torch"]["prediction"]).all()
    np.testing.assert_allclose(answers["onnx"]["probability_fraud"], answers["torch"]["probability_fraud"], atol=1e-5)


def test_report_slices_label_rows_by_the_decision_rule(flag_rate_run: Path) -> None:
    from modelforge.evaluate.slices import slice_metrics

    run = load_run(flag_rate_run)
    rows = split_of(flag_rate_run, "test")
    probabilities = run.decision.calibrated(run.outputs(rows))
    target = run.preprocessor.transform_target(rows)
    side = pd.Series(np.where(rows["x0"] > 0, "right", "left"))
    report = slice_metrics(
        "side", side, target, probabilities, run.task, run.preprocessor.classes, decision=run.decision, positive="fraud"
    )
    flagged = probabilities[:, run.decision.positive] >= run.decision.threshold
    for group in report.groups:
        mask = (side == group.value).to_numpy()
        assert group.metrics["selection_rate"] == pytest.approx(flagged[mask].mean())
