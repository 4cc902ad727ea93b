from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelforge.compress.recipe import CompressOptions, compress_run
from modelforge.errors import ModelforgeError, RunError
from modelforge.run import load_run
from modelforge.tasks import TASKS


def test_compress_cli_with_report(mlp_run, tmp_path, cli) -> None:
    out = tmp_path / "int8"
    result = cli("compress", mlp_run, "--out", out, "--quantize", "int8-dynamic", "--report")
    assert result.returncode == 0, result.stderr
    assert "| mlp | torch |" in result.stdout and "| int8 | torch |" in result.stdout
    with open(out / "benchmark.csv") as file:
        rows = list(csv.DictReader(file))
    assert [r["variant"] for r in rows] == ["mlp", "int8"]
    assert int(rows[0]["file_bytes"]) > 2 * int(rows[1]["file_bytes"])
    assert float(rows[1]["latency_p95_ms"]) >= float(rows[1]["latency_p50_ms"]) > 0
    assert load_run(out).evaluate(load_run(out).config.data.train)["accuracy"] > 0.85


def test_compress_missing_run_and_missing_weights(tmp_path, mlp_run) -> None:
    with pytest.raises(RunError, match="not found"):
        compress_run(tmp_path / "nope", tmp_path / "x", CompressOptions(prune=0.5))
    hollow = tmp_path / "hollow"
    shutil.copytree(mlp_run, hollow)
    (hollow / "model.safetensors").unlink()
    with pytest.raises(RunError, match="no weights"):
        compress_run(hollow, tmp_path / "y", CompressOptions(quantize="int8-dynamic"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_calibration_file_with_wrong_columns(cnn_run, tmp_path, cli, assert_one_line_error) -> None:
    bad = tmp_path / "rows.csv"
    bad.write_text("a,b\n1,2\n")
    result = cli("compress", cnn_run, "--out", tmp_path / "q", "--quantize", "int8-static", "--calibration", bad)
    assert_one_line_error(result, "input column 'x' is missing")
    assert not (tmp_path / "q").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".q.")]  # no staged leftovers


def test_benchmark_cli_table_and_files(mlp_run, tmp_path, cli, assert_one_line_error) -> None:
    result = cli("benchmark", mlp_run, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    for column in ("file KB", "params", "non-zero", "p50 ms", "p95 ms", "rows/s @64", "accuracy"):
        assert column in header
    assert (tmp_path / "benchmark.md").read_text() == result.stdout
    with open(tmp_path / "benchmark.csv") as file:
        row = next(csv.DictReader(file))
    assert np.isclose(float(row["nonzero_share"]), 1.0)
    assert_one_line_error(cli("benchmark", tmp_path / "nope"), "not found")


def test_benchmark_writes_its_own_folder_never_into_a_run(mlp_run, tmp_path, monkeypatch) -> None:
    from cli_runner import modelforge_in_process

    before = sorted(p.name for p in mlp_run.iterdir())
    monkeypatch.chdir(tmp_path)
    result = modelforge_in_process("benchmark", str(mlp_run))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in mlp_run.iterdir()) == before  # the run's files (and manifest) untouched
    (written,) = (tmp_path / "benchmarks").iterdir()
    assert (written / "benchmark.csv").is_file() and (written / "benchmark.md").is_file()
    refused = modelforge_in_process("benchmark", str(mlp_run), "--out", str(mlp_run))
    assert refused.returncode == 2 and "is a run directory" in refused.stderr


@pytest.mark.parametrize(
    ("task", "options", "refusal"),
    [
        ("seq2seq", CompressOptions(prune=0.5), "seq2seq runs take --quantize int8-dynamic only, got --prune"),
        (
            "seq2seq",
            CompressOptions(quantize="int8-static", finetune_epochs=2),
            "got --quantize int8-static, --finetune-epochs",
        ),
        ("seq2seq", CompressOptions(quantize="int8-dynamic", calibration=Path("rows.csv")), "got --calibration"),
        ("detection", CompressOptions(), "detection runs take --quantize int8-static only, got no --quantize"),
        (
            "classification",
            CompressOptions(quantize="int4"),
            "runs take --quantize int8-dynamic or --quantize int8-static, got --quantize int4",
        ),
        ("seq2seq", CompressOptions(quantize="int8-dynamic"), None),
        ("detection", CompressOptions(quantize="int8-static", calibration=Path("images.json")), None),
        ("classification", CompressOptions(prune=0.3, finetune_epochs=1, quantize="int8-static"), None),
    ],
)
def test_options_are_checked_against_what_the_task_takes(
    task: str, options: CompressOptions, refusal: str | None
) -> None:
    if refusal is None:
        options.check_for_task(TASKS.get(task))
    else:
        with pytest.raises(ModelforgeError, match=re.escape(refusal)):
            options.check_for_task(TASKS.get(task))
