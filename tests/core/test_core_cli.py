"""End-to-end tests of the core verbs through a real `modelforge` process."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def modelforge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelforge", *args]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(modelforge_command(*args), capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    (root / "data.csv").write_bytes((EXAMPLES / "data" / "breast_cancer.csv").read_bytes())
    init = cli("init", str(root / "data.csv"), "--target", "diagnosis", "--out", str(root / "cfg.yaml"))
    assert init.returncode == 0, init.stderr
    run = root / "runs" / "first"
    result = cli("train", str(root / "cfg.yaml"), "--out", str(run), "--set", "train.epochs=3", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "test: accuracy" in result.stdout
    return run


def test_train_writes_a_complete_run_directory(trained_run: Path) -> None:
    names = {p.name for p in trained_run.iterdir()}
    assert {
        "config.yaml",
        "preprocessing.json",
        "model.safetensors",
        "metrics.jsonl",
        "eval.json",
        "environment.json",
        "model.json",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and "valid_accuracy" in rows[0]
    environment = json.loads((trained_run / "environment.json").read_text())
    assert environment["versions"]["torch"] and len(next(iter(environment["data"].values()))) == 64


def test_evaluate_json_has_the_promised_keys(trained_run: Path) -> None:
    data = trained_run.parent.parent / "data.csv"
    result = cli("evaluate", str(trained_run), "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "confusion_matrix", "per_class"):
        assert key in metrics
    assert metrics["accuracy"] > 0.85 and sum(map(sum, metrics["confusion_matrix"])) == 569


def test_predict_without_target_column(trained_run: Path, tmp_path: Path) -> None:
    rows = pd.read_csv(trained_run.parent.parent / "data.csv").drop(columns="diagnosis").head(10)
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = cli("predict", str(trained_run), "--data", str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv"))
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert list(predictions.columns) == ["row", "prediction", "probability_benign", "probability_malignant"]
    assert predictions["row"].tolist() == list(range(1, 11))
    assert set(predictions["prediction"]) <= {"benign", "malignant"}
    assert (predictions.filter(like="probability_").sum(axis=1) - 1).abs().max() < 1e-6


def test_runs_and_models_tables(trained_run: Path) -> None:
    result = cli("runs", str(trained_run.parent))
    assert result.returncode == 0 and "first" in result.stdout and "accuracy" in result.stdout
    models = cli("models")
    for name in ("mlp", "cnn", "resnet", "vit", "lstm", "gru", "transformer"):
        assert any(line.startswith(name + " ") for line in models.stdout.splitlines()), name


def test_help_does_not_import_torch() -> None:
    code = "import sys, modelforge.cli; print('torch' in sys.modules, 'pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False False"
    assert cli("--help").returncode == 0


def test_init_infers_images_and_npz(image_folder: Path, tmp_path: Path) -> None:
    result = cli("init", str(image_folder))
    assert result.returncode == 0 and "type: cnn" in result.stdout and "type: image" in result.stdout
    npz = cli("init", str(EXAMPLES / "data" / "digits.npz"), "--target", "y")
    assert npz.returncode == 0 and "type: cnn" in npz.stdout and "target: y" in npz.stdout


BAD_INPUTS = [
    ("missing file", "data: {train: nowhere.csv, target: y}\n", "nowhere.csv: file not found"),
    ("unknown target", "data: {train: DATA, target: diagnosys}\n", "did you mean diagnosis"),
    ("malformed yaml", "data: {train: DATA, target: [\n", "cfg.yaml: line"),
    ("wrong target type", "task: regression\ndata: {train: DATA, target: diagnosis}\n", "regression needs numeric"),
    (
        "unknown feature column",
        "data: {train: DATA, target: diagnosis}\nfeatures: [{name: nope, type: numeric}]\n",
        "column 'nope' not found",
    ),
]


@pytest.mark.parametrize(("case", "yaml_text", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: str, yaml_text: str, message: str, breast_cancer_csv: Path, tmp_path: Path
) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml_text.replace("DATA", str(breast_cancer_csv)))
    result = cli("train", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_ragged_csv_rejected_by_default(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("a,y\n1,x\n2,y,3\n3,x\n4,y\n")
    (tmp_path / "cfg.yaml").write_text("data: {train: r.csv, target: y}\n")
    result = cli("train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "r.csv: line 3: 3 fields, expected 2 (1 of 4 rows" in result.stderr
    assert "data.bad_rows: skip" in result.stderr and not (tmp_path / "run").exists()


def test_rows_without_a_target_are_left_out_with_a_warning(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'' if i in (2, 7) else 'xy'[i % 2]}\n" for i in range(1, 31))
    (tmp_path / "m.csv").write_text("a,y\n" + rows)
    (tmp_path / "cfg.yaml").write_text("data: {train: m.csv, target: y}\ntrain: {epochs: 1}\n")
    result = cli("train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "warning: target column 'y' is empty in 2 of 30 rows (rows 2, 7); those rows are left out" in result.stderr
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_predict_numbers_rows_and_skips_bad_ones_only_when_the_config_says_so(
    trained_run: Path, tmp_path: Path
) -> None:
    rows = pd.read_csv(trained_run.parent.parent / "data.csv").drop(columns="diagnosis").head(6)
    lines = rows.to_csv(index=False).splitlines()
    lines[3] += ",1,2"  # data row 3 has two fields too many
    (tmp_path / "new.csv").write_text("\n".join(lines) + "\n")
    refused = cli("predict", str(trained_run), "--data", str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv"))
    assert refused.returncode == 2 and "new.csv: line 4:" in refused.stderr and not (tmp_path / "p.csv").exists()

    skipping = tmp_path / "skipping"
    shutil.copytree(trained_run, skipping)
    config = (skipping / "config.yaml").read_text()
    assert "bad_rows: error" in config
    (skipping / "config.yaml").write_text(config.replace("bad_rows: error", "bad_rows: skip"))
    result = cli("predict", str(skipping), "--data", str(tmp_path / "new.csv"))
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(io.StringIO(result.stdout))["row"].tolist() == [1, 2, 4, 5, 6]
    warning = [line for line in result.stderr.splitlines() if line.strip()]
    skipped = "skipped 1 of 6 rows (have the wrong number of fields): rows 3"
    assert warning == [f"warning: {tmp_path / 'new.csv'}: {skipped}"]


def test_evaluate_missing_run_exits_2(tmp_path: Path) -> None:
    result = cli("evaluate", str(tmp_path / "nope"), "--json")
    assert result.returncode == 2 and "run directory not found" in result.stderr
