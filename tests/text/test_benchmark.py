"""`modelforge benchmark` on a GPT run: one decode step after a short prompt (batch 1) and 64
prompts' next-token logits, on the eager module and on the exported graph in onnxruntime."""

from __future__ import annotations

import csv
from pathlib import Path

from cli_runner import modelforge_in_process


def test_benchmark_times_a_gpt_on_torch_and_onnx(tiny_run: Path, tmp_path: Path) -> None:
    exported = modelforge_in_process("export", str(tiny_run), "--format", "onnx")
    assert exported.returncode == 0, exported.stderr
    result = modelforge_in_process("benchmark", str(tiny_run), "--engine", "all", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    for column in ("file KB", "params", "p50 ms", "p95 ms", "rows/s @64", "val_loss"):
        assert column in header
    with open(tmp_path / "benchmark.csv") as file:
        rows = list(csv.DictReader(file))
    assert [r["engine"] for r in rows] == ["torch", "onnx"]
    for row in rows:
        assert float(row["latency_p95_ms"]) >= float(row["latency_p50_ms"]) > 0
        assert float(row["throughput_rows_per_s"]) > 0 and int(row["parameters"]) > 0
    assert rows[0]["metric"] == "val_loss" and float(rows[0]["value"]) > 0
    assert "| onnx |" in result.stdout and "| — |" in result.stdout  # the graph's row: no metric of its own
    assert "tiny: one request is one token decoded after a 16-token prompt" in result.stdout
    # the engines a GPT run does not take are named with the reason
    assert "no frozen row: --engine frozen: tiny is a gpt run" in result.stderr
    assert "no onnx-int8 row" in result.stderr
    refused = modelforge_in_process("benchmark", str(tiny_run), "--engine", "frozen", "--out", str(tmp_path / "f"))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
