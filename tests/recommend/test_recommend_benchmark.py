"""`modelforge benchmark` on a recommender: one user scored against all items (batch 1) and 64
users at once, on the eager module and on the exported score(user, item) graph."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

import modelforge
from cli_runner import modelforge_in_process
from modelforge.export.recipe import export_run

CASES = [("mf", "explicit", "rmse"), ("two_tower", "implicit", "ndcg@")]


@pytest.mark.parametrize(("model", "feedback", "metric"), CASES)
def test_benchmark_times_a_recommender_on_torch_and_onnx(
    recommend_config: Any, model: str, feedback: str, metric: str, tmp_path: Path
) -> None:
    run_dir = Path(modelforge.train(recommend_config(feedback, model=model, epochs=2), tmp_path / "run").path)
    before = modelforge_in_process("benchmark", str(run_dir), "--engine", "onnx", "--out", str(tmp_path / "b0"))
    assert before.returncode == 2 and "modelforge export" in before.stderr, before.stderr
    assert len(before.stderr.strip().splitlines()) == 1, before.stderr
    export_run(run_dir, "onnx")
    result = modelforge_in_process("benchmark", str(run_dir), "--engine", "all", "--out", str(tmp_path / "bench"))
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "bench" / "benchmark.csv") as file:
        rows = list(csv.DictReader(file))
    assert [r["engine"] for r in rows] == ["torch", "onnx"]
    for row in rows:
        assert float(row["latency_p95_ms"]) >= float(row["latency_p50_ms"]) > 0
        assert float(row["throughput_rows_per_s"]) > 0 and int(row["parameters"]) > 0
    assert rows[0]["metric"].startswith(metric), rows[0]
    assert "no frozen row" in result.stderr and "no onnx-int8 row" in result.stderr
