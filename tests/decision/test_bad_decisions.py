"""Decisions that cannot be made fail in one line with exit code 2, naming the key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from skewed_data import skewed_config

from cli_runner import modelforge_in_process

REPO = Path(__file__).resolve().parents[2]
DIABETES = REPO / "examples" / "data" / "diabetes.csv"
DIGITS = REPO / "examples" / "data" / "digits.npz"


def train_with(tmp_path: Path, config: dict[str, Any]) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return modelforge_in_process("train", str(path), "--out", str(tmp_path / "run"), "--no-progress")


def one_line(result: Any, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("epoch ")]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("sections", "fragments"),
    [
        (
            {"decision": {"cost": {"false_positive": -1, "false_negative": 20}}},
            ["decision.cost.false_positive", ">= 0"],
        ),
        ({"decision": {"cost": {"false_positive": 0, "false_negative": 0}}}, ["decision.cost", "at least one cost"]),
        ({"decision": {"max_flag_rate": 1.5}}, ["decision.max_flag_rate", "<= 1"]),
        ({"decision": {"optimize": "f1", "max_flag_rate": 0.1}}, ["decision", "exactly one of"]),
        ({"decision": {"optimize": "f1", "positive": "nope"}}, ["decision.positive", "'nope'", "fraud, ok"]),
        ({"calibrate": "platt"}, ["calibrate", "temperature", "isotonic"]),
    ],
)
def test_bad_decision_config_is_one_line(
    tmp_path: Path, skewed_csv: Path, sections: dict[str, Any], fragments: list[str]
) -> None:
    one_line(train_with(tmp_path, skewed_config(skewed_csv, **sections)), *fragments)
    assert not (tmp_path / "run").exists()


def test_unreachable_target_says_the_best_reachable_value(tmp_path: Path, skewed_csv: Path) -> None:
    result = train_with(tmp_path, skewed_config(skewed_csv, decision={"max_flag_rate": 0.0001}))
    one_line(result, "decision.max_flag_rate: 0.0001 cannot be met on the validation split", "raise it")


def test_decision_on_regression_is_refused(tmp_path: Path) -> None:
    config = {
        "task": "regression",
        "data": {"train": str(DIABETES), "target": "target"},
        "decision": {"optimize": "f1"},
    }
    one_line(train_with(tmp_path, config), "decision: not used by task regression")


def test_decision_on_many_classes_is_refused(tmp_path: Path) -> None:
    config = {
        "data": {"train": str(DIGITS), "target": "y"},
        "features": [{"name": "x", "type": "image"}],
        "model": {"type": "cnn"},
        "decision": {"optimize": "f1"},
    }
    one_line(train_with(tmp_path, config), "decision: needs two classes, the target has 10")


def test_decision_without_a_validation_split_is_refused(tmp_path: Path, skewed_csv: Path) -> None:
    config = skewed_config(skewed_csv, calibrate="temperature")
    config["data"]["split"] = {"valid": 0.0, "test": 0.2}
    one_line(train_with(tmp_path, config), "calibrate: needs a validation split")


def test_threshold_outside_zero_one_and_on_regression_runs(tmp_path: Path, plain_run: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("x0\n1\n")
    one_line(modelforge_in_process("predict", str(plain_run), "--data", str(rows), "--threshold", "1.5"), "[0, 1]")
