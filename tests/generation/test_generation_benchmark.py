"""`modelforge benchmark` on a generator: one image sampled (batch 1) and 64 images, on the eager
module and on the exported decoder in onnxruntime."""

from __future__ import annotations

import csv
from pathlib import Path

import modelforge
from cli_runner import modelforge_in_process
from modelforge.export.recipe import export_run

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "data" / "digits.npz"


def test_benchmark_times_a_generator_on_torch_and_onnx(tmp_path: Path) -> None:
    config = {
        "task": "generation",
        "seed": 0,
        "data": {"train": str(DIGITS), "target": "y", "split": {"valid": 0.1, "test": 0.2}},
        "model": {"type": "vae", "hidden": 32},
        "train": {"epochs": 1, "batch_size": 64, "lr": 1e-3, "threads": 1},
    }
    run_dir = Path(modelforge.train(config, tmp_path / "run").path)
    export_run(run_dir, "onnx")
    result = modelforge_in_process("benchmark", str(run_dir), "--engine", "all", "--out", str(tmp_path / "bench"))
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "bench" / "benchmark.csv") as file:
        rows = list(csv.DictReader(file))
    assert [r["engine"] for r in rows] == ["torch", "onnx"]
    for row in rows:
        assert float(row["latency_p95_ms"]) >= float(row["latency_p50_ms"]) > 0
        assert float(row["throughput_rows_per_s"]) > 0 and int(row["parameters"]) > 0
    assert rows[0]["metric"] == "test_loss" and float(rows[0]["value"]) > 0
    assert "no frozen row: --engine frozen: run is a vae run" in result.stderr
