"""bench/gpu.py cannot rot: its `--smoke` run (the same code paths, tiny sizes, CPU) must fill every
section of the table with a positive throughput, or for FSDP2 / the HF Trainer say why it skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THROUGHPUT = {
    "1": "tokens_per_s",
    "2": "tokens_per_s",
    "3a": "samples_per_s",
    "3b": "samples_per_s",
    "4": "tokens_per_s",
}
MAY_SKIP = {"2", "3b"}  # FSDP2 without gloo, transformers that cannot run


def test_gpu_bench_smoke_fills_every_section(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("machine: "), result.stdout[:500]
    assert "failed:" not in result.stdout, result.stdout

    record = json.loads(out.read_text())
    assert record["smoke"] is True
    assert record["device"] == "cpu"
    sections = record["sections"]
    assert set(sections) == set(THROUGHPUT)
    for key, metric in THROUGHPUT.items():
        row = sections[key]
        if row["status"] == "skipped" and key in MAY_SKIP:
            assert row["skipped"].strip(), f"section {key} skipped without a reason"
            continue
        assert row["status"] == "ok", f"section {key}: {row}"
        assert row[metric] > 0, f"section {key}: {row}"
        assert row["seconds"] > 0
    assert sections["1"]["mfu"] is None  # no peak for a CPU
    assert f"| 1 | gpt2 train | {sections['1']['tokens_per_s']:,.0f} tokens/s |" in result.stdout
