from pathlib import Path

import pytest

from modelforge.config import load_config, parse_override
from modelforge.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_overrides_parse_numbers_lists_and_text() -> None:
    assert parse_override("train.lr=3e-4") == (["train", "lr"], 3e-4)
    assert parse_override("model.hidden=[256, 128]") == (["model", "hidden"], [256, 128])
    assert parse_override("model.type=cnn") == (["model", "type"], "cnn")


def test_set_overrides_any_key_and_paths_resolve_against_config(tmp_path: Path) -> None:
    path = write(tmp_path, "data: {train: data.csv, target: y}\n")
    config = load_config(path, ["train.lr=3e-4", "model.hidden=[256,128]", "seed=7"])
    assert config.train.lr == pytest.approx(3e-4)
    assert config.model.options() == {"hidden": [256, 128]}
    assert config.seed == 7
    assert config.data.train == str(tmp_path / "data.csv")


def test_misspelled_keys_are_reported_together_with_suggestions(tmp_path: Path) -> None:
    path = write(tmp_path, "data: {train: d.csv, target: y}\ntrain: {lrr: 0.1, epochs: -1}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "train.lrr: unknown key (did you mean lr?)" in message
    assert "train.epochs" in message and "-1" in message


def test_unknown_model_option_and_type_name_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "data: {train: d.csv, target: y}\nmodel: {type: mlp, hiden: [4]}\n")
    with pytest.raises(ConfigError, match=r"model.hiden: unknown option for mlp \(did you mean hidden\?\)"):
        load_config(path)
    with pytest.raises(ConfigError, match="did you mean lstm"):
        load_config(path, ["model.type=lstn", "model.hiden=null"])


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: [a.csv\n  target: y\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml: line \d+"):
        load_config(path)


def test_feature_sections_are_strict_per_type(tmp_path: Path) -> None:
    path = write(tmp_path, "data: {train: d.csv, target: y}\nfeatures: [{name: a, type: numeric, max_length: 3}]\n")
    with pytest.raises(ConfigError, match=r"features\.0\.max_length: unknown key"):
        load_config(path)
