"""Multi-label classification: a set of labels per row, one sigmoid and one tuned threshold per label."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from skewed_data import train_run

from cli_runner import modelforge_in_process
from modelforge.decision import DECISION_FILE
from modelforge.run import load_run


def rule_labels(frame: pd.DataFrame) -> list[list[str]]:
    """Known rules: each label a simple function of the inputs (rows may carry none, one or several)."""
    rules = {
        "sports": frame["x0"] > 0,
        "politics": frame["x1"] + frame["x2"] > 0.5,
        "science": frame["x3"] < -0.3,
        "local": (frame["x0"] > 0) & (frame["x4"] > 0),
    }
    return [[name for name, hit in rules.items() if hit.iloc[i]] for i in range(len(frame))]


def rule_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 6)), columns=[f"x{i}" for i in range(6)])
    frame["topics"] = rule_labels(frame)
    return frame


def write_jsonl(frame: pd.DataFrame, path: Path) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict(orient="records")))
    return path


def multilabel_config(train: Path, **sections: Any) -> dict[str, Any]:
    return {
        "task": "multilabel",
        "seed": 0,
        "data": {"train": str(train), "target": "topics", "split": {"valid": 0.2, "test": 0.0}},
        "model": {"type": "mlp", "hidden": [64, 64]},
        "train": {"epochs": 40, "batch_size": 64, "lr": 3e-3, "threads": 1},
        **sections,
    }


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("multilabel")
    write_jsonl(rule_frame(3000, seed=0), folder / "train.jsonl")
    config = multilabel_config(folder / "train.jsonl", decision={"optimize": "f1"})
    return train_run(config, folder / "run")


def test_rule_based_labels_reach_micro_f1_095_on_unseen_rows(multilabel_run: Path, tmp_path: Path) -> None:
    unseen = rule_frame(2000, seed=1)
    metrics = load_run(multilabel_run).evaluate(unseen)
    assert metrics["micro_f1"] >= 0.95, metrics
    assert {"macro_f1", "subset_accuracy", "hamming_loss", "average_precision", "per_label", "at_0_5"} <= set(metrics)
    saved = json.loads((multilabel_run / DECISION_FILE).read_text())
    assert saved["kind"] == "label_set" and len(saved["thresholds"]) == 4
    assert metrics["thresholds"] == dict(zip(saved["classes"], saved["thresholds"], strict=True))
    # the text form "a|c" in CSV reads the same as JSONL lists
    csv = unseen.assign(topics=["|".join(labels) for labels in unseen["topics"]])
    csv.to_csv(tmp_path / "unseen.csv", index=False)
    result = modelforge_in_process("evaluate", str(multilabel_run), "--data", str(tmp_path / "unseen.csv"), "--json")
    assert result.returncode == 0, result.stderr
    from_csv = json.loads(result.stdout)  # an empty cell is the empty set, as [] is in JSONL
    assert from_csv["n"] == len(unseen) and from_csv["micro_f1"] == pytest.approx(metrics["micro_f1"])


def test_predict_and_serve_return_label_sets(multilabel_run: Path, tmp_path: Path) -> None:
    rows = rule_frame(200, seed=2)
    expected = rows.pop("topics")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = modelforge_in_process("predict", str(multilabel_run), "--data", str(tmp_path / "rows.csv"))
    assert result.returncode == 0, result.stderr
    predicted = pd.read_csv(io.StringIO(result.stdout), keep_default_na=False)
    sets = [set(filter(None, text.split("|"))) for text in predicted["prediction"]]
    assert np.mean([s == set(e) for s, e in zip(sets, expected, strict=True)]) > 0.8
    assert {"probability_sports", "probability_local"} <= set(predicted.columns)

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from modelforge.serve.app import create_app
    from modelforge.serve.services import load_services

    with TestClient(create_app(load_services([f"topics={multilabel_run}"]))) as client:
        answer = client.post("/v1/models/topics/predict", json={"records": rows.to_dict(orient="records")})
    assert answer.status_code == 200, answer.text
    served = [set(p["labels"]) for p in answer.json()["predictions"]]
    assert served == sets


def test_multilabel_bad_inputs_are_one_line(tmp_path: Path) -> None:
    import yaml

    frame = rule_frame(300, seed=3)
    write_jsonl(frame.assign(topics=[["only"]] * len(frame)), tmp_path / "one.jsonl")
    config = multilabel_config(tmp_path / "one.jsonl")
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(config))
    result = modelforge_in_process("train", str(tmp_path / "one.yaml"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "needs 2 or more" in result.stderr, result.stderr
    config["calibrate"] = "temperature"
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump(config))
    result = modelforge_in_process("train", str(tmp_path / "cal.yaml"), "--out", str(tmp_path / "run2"))
    assert result.returncode == 2 and "calibrate: not used by task multilabel" in result.stderr, result.stderr
    write_jsonl(frame, tmp_path / "rows.jsonl")
    config = multilabel_config(tmp_path / "rows.jsonl", decision={"optimize": "f1", "positive": "sports"})
    (tmp_path / "positive.yaml").write_text(yaml.safe_dump(config))
    result = modelforge_in_process("train", str(tmp_path / "positive.yaml"), "--out", str(tmp_path / "run3"))
    assert result.returncode == 2 and "decision.positive: not used by task multilabel" in result.stderr
    assert not (tmp_path / "run3").exists()
