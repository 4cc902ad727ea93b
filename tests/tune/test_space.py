"""The search space is checked before any trial runs; every error names the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tune_configs import BASE_CONFIG, modelforge, write_config

from modelforge.config import read_yaml
from modelforge.errors import ConfigError
from modelforge.tune.samplers import grid_size
from modelforge.tune.space import parse_space


def space_config(csv: Path, tmp_path: Path, space: dict[str, Any], **tune: Any) -> dict[str, Any]:
    path = write_config(tmp_path, csv, tune={**BASE_CONFIG["tune"], "space": space, **tune})
    return read_yaml(path)


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"train.lrr": {"uniform": [0.1, 0.2]}}, "train.lrr is not a config key (did you mean lr?)"),
        ({"model.hiden": {"choice": [[8]]}}, "model.hiden: hiden is not an option of model mlp (did you"),
        ({"train.lr": {"uniform": [-1.0, 1.0]}}, "tune.space.train.lr: value -1.0 in the range is invalid"),
        ({"train.batch_size": {"int": [0, 8]}}, "tune.space.train.batch_size: value 0 in the range is invalid"),
        ({"train.optimizer": {"choice": ["adam", "lion"]}}, "tune.space.train.optimizer: value 'lion'"),
        ({"train": {"uniform": [0.1, 0.2]}}, "tune.space.train: train is a section"),
        ({"train.lr.x": {"uniform": [0.1, 0.2]}}, "tune.space.train.lr.x: train.lr is a value, not a section"),
        ({"features.0.name": {"choice": ["a"]}}, "tune.space.features.0.name: features is a list"),
        ({"tune.trials": {"int": [1, 3]}}, "tune.space.tune.trials: the tune section itself cannot be searched"),
        ({"train.lr": {"loguniform": [0.0, 0.1]}}, "tune.space.train.lr: loguniform in log space needs low > 0"),
        ({"train.lr": {"uniform": [0.2, 0.1]}}, "tune.space.train.lr: uniform needs [low, high] with low < high"),
        ({"train.lr": {"unifrom": [0.1, 0.2]}}, "tune.space.train.lr.unifrom: unknown key"),
        ({"train.lr": {"uniform": [0.1, 0.2], "choice": [0.1]}}, "tune.space.train.lr: give exactly one of"),
    ],
)
def test_bad_space_names_the_key(breast_cancer_csv: Path, tmp_path: Path, space: dict, expected: str) -> None:
    raw = space_config(breast_cancer_csv, tmp_path, space)
    with pytest.raises(ConfigError) as caught:
        parse_space(raw, [])
    assert expected in str(caught.value)


def test_unknown_metric_lists_the_known_ones(breast_cancer_csv: Path, tmp_path: Path) -> None:
    raw = space_config(breast_cancer_csv, tmp_path, BASE_CONFIG["tune"]["space"], metric="valid_acc")
    with pytest.raises(ConfigError, match=r"tune.metric: 'valid_acc' .*did you mean valid_accuracy"):
        parse_space(raw, [])


def test_set_overrides_reach_the_space_check(breast_cancer_csv: Path, tmp_path: Path) -> None:
    raw = space_config(breast_cancer_csv, tmp_path, {"model.channels": {"choice": [[8], [16]]}})
    with pytest.raises(ConfigError, match="channels is not an option of model mlp"):
        parse_space(raw, [])
    raw = space_config(breast_cancer_csv, tmp_path, BASE_CONFIG["tune"]["space"])
    base, params = parse_space(raw, ["train.epochs=7"])
    assert base.train.epochs == 7
    assert [p.path for p in params] == ["train.lr", "model.hidden", "model.dropout"]


def test_grid_values_and_size(breast_cancer_csv: Path, tmp_path: Path) -> None:
    space = {
        "train.batch_size": {"int": [16, 64], "step": 16},
        "model.dropout": {"uniform": [0.0, 0.5], "step": 0.25},
        "model.hidden": {"choice": [[16], [32, 16]]},
    }
    _, params = parse_space(space_config(breast_cancer_csv, tmp_path, space), [])
    assert params[0].grid_values() == [16, 32, 48, 64]
    assert params[1].grid_values() == [0.0, 0.25, 0.5]
    assert params[2].grid_values() == ["[16]", "[32, 16]"]
    assert params[2].decode("[32, 16]") == [32, 16]
    assert grid_size(params) == 24


def test_cli_rejects_a_bad_space_before_any_trial(breast_cancer_csv: Path, tmp_path: Path) -> None:
    tune = {**BASE_CONFIG["tune"], "space": {"train.lr": {"uniform": [-1.0, 0.1]}}}
    config = write_config(tmp_path, breast_cancer_csv, tune=tune)
    result = modelforge("tune", str(config), "--out", str(tmp_path / "study"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tune.space.train.lr: value -1.0"), result.stderr
    assert not (tmp_path / "study").exists()
