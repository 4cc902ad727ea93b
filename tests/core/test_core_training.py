"""Training behaviour and the accuracy floors on real (scikit-learn bundled) data."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
import pytest

import modelforge
from modelforge.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


VOLATILE = {"seconds", "samples_per_second"}


def stable_history(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


def test_same_config_twice_gives_the_same_metrics(mixed_csv: Path, tmp_path: Path) -> None:
    config = {"data": {"train": str(mixed_csv), "target": "label"}, "train": {"epochs": 3}, "model": {"type": "mlp"}}
    first = modelforge.train(config, tmp_path / "a")
    second = modelforge.train(config, tmp_path / "b")
    assert stable_history(first.path) == stable_history(second.path)
    assert first.metrics["accuracy"] == second.metrics["accuracy"]


def test_mixed_table_learns_and_python_api_mirrors_cli(mixed_csv: Path, tmp_path: Path) -> None:
    config = {"data": {"train": str(mixed_csv), "target": "label"}, "train": {"epochs": 40, "lr": 3e-3}}
    run = modelforge.train(config, tmp_path / "run")
    frame = pd.read_csv(mixed_csv)
    assert run.evaluate(frame)["accuracy"] > 0.9
    predictions = run.predict(frame.drop(columns="label"))
    assert len(predictions) == len(frame) and set(predictions["prediction"]) <= {"yes", "no"}
    reloaded = modelforge.load_run(run.path).predict(frame.head(5))
    pd.testing.assert_frame_equal(reloaded, predictions.head(5), atol=1e-6)  # batch size changes float sums


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.optimizer=sgd", "train.nesterov=true", "train.schedule=step", "train.l1=1e-4"],
        ["train.optimizer=adam", "train.schedule=onecycle", "train.grad_clip=1.0", "train.grad_accum=2"],
        ["train.precision=bf16", "train.class_weights=balanced", "train.warmup_steps=5", "train.schedule=cosine"],
        ["train.loss=cross_entropy", "train.label_smoothing=0.1", "model.norm=layer"],
    ],
)
def test_training_options_run_and_learn(overrides: list[str], tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "breast_cancer.yaml", ["train.epochs=15", "train.lr=5e-3", *overrides])
    run = modelforge.train(config, tmp_path / "run")
    assert run.metrics["accuracy"] > 0.85


def test_early_stopping_stops_and_keeps_the_best_epoch(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    config = load_config(
        EXAMPLES / "breast_cancer.yaml", ["train.epochs=200", "train.lr=0.05", "train.early_stopping.patience=3"]
    )
    run = modelforge.train(config, tmp_path / "run")
    history = run.history
    best = min(history, key=lambda row: row["valid_loss"])
    assert run.metrics["stopped_early"] and len(history) == best["epoch"] + 3 < 200
    assert run.metrics["best_epoch"] == best["epoch"]
    # it says why, in one line: the metric, the patience and the best epoch
    (line,) = [line for line in capfd.readouterr().err.splitlines() if line.startswith("early stopping")]
    assert f"after epoch {len(history)}: valid_loss did not improve for 3 epochs" in line
    assert f"at epoch {best['epoch']}" in line


def test_regression_floor_diabetes(tmp_path: Path) -> None:
    scores = [
        modelforge.train(EXAMPLES / "diabetes.yaml", tmp_path / f"s{seed}", [f"seed={seed}"]).metrics["r2"]
        for seed in range(3)
    ]
    assert statistics.mean(scores) >= 0.45, scores


@pytest.mark.parametrize(("example", "floor"), [("breast_cancer", 0.96), ("wine", 0.95)])
def test_tabular_classification_floors(example: str, floor: float, tmp_path: Path) -> None:
    scores = [
        modelforge.train(EXAMPLES / f"{example}.yaml", tmp_path / f"s{seed}", [f"seed={seed}"]).metrics["accuracy"]
        for seed in range(5)
    ]
    assert statistics.mean(scores) >= floor, scores


def test_digits_cnn_floor(tmp_path: Path) -> None:
    run = modelforge.train(EXAMPLES / "quickstart.yaml", tmp_path / "digits")
    assert run.metrics["accuracy"] >= 0.98, run.metrics["accuracy"]
