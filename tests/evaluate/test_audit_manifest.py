"""`modelforge audit`: provenance printed; a changed or missing run file fails the audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from insight_runs import modelforge_cli

from modelforge.evaluate.audit import MANIFEST, audit_run


def copy_run(run: Any, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run.path, target)
    return target


def test_training_writes_a_manifest_of_every_file(classifier_run: Any) -> None:
    recorded = json.loads((classifier_run.path / MANIFEST).read_text())["files"]
    for name in ("config.yaml", "model.safetensors", "model.json", "eval.json", "environment.json"):
        assert name in recorded and len(recorded[name]["sha256"]) == 64


def test_audit_passes_then_detects_a_modified_file(classifier_run: Any, tmp_path: Path) -> None:
    run_dir = copy_run(classifier_run, tmp_path)
    clean = modelforge_cli("audit", str(run_dir))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "audit: passed" in clean.stdout
    for field in ("git commit", "torch", "started", str(classifier_run.config.data.train), "config     sha256"):
        assert field in clean.stdout, field

    weights = run_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the weights
    weights.write_bytes(bytes(data))
    tampered = modelforge_cli("audit", str(run_dir))
    assert tampered.returncode == 1
    assert "audit: FAILED" in tampered.stdout and "model.safetensors: modified since training" in tampered.stdout


def test_missing_file_fails_and_added_file_is_only_listed(classifier_run: Any, tmp_path: Path) -> None:
    run_dir = copy_run(classifier_run, tmp_path)
    (run_dir / "report.html").write_text("<html></html>")
    report = audit_run(run_dir)
    assert report.passed and any(f.path == "report.html" and f.status == "added" for f in report.files)
    (run_dir / "eval.json").unlink()
    report = audit_run(run_dir)
    assert not report.passed and report.problems == ["eval.json: missing since training"]


def test_changed_training_data_is_reported(classifier_run: Any, tmp_path: Path) -> None:
    run_dir = copy_run(classifier_run, tmp_path)
    environment = json.loads((run_dir / "environment.json").read_text())
    data_file = tmp_path / "data.csv"
    data_file.write_text("a,b\n1,2\n")
    environment["data"] = {str(data_file): "0" * 64}
    (run_dir / "environment.json").write_text(json.dumps(environment))
    report = audit_run(run_dir)
    assert [(c.path, c.status) for c in report.data] == [(str(data_file), "modified")]
    assert "environment.json: modified since training" in report.problems


def test_audit_of_a_missing_run_exits_2(tmp_path: Path) -> None:
    result = modelforge_cli("audit", str(tmp_path / "nope"))
    assert result.returncode == 2 and "run directory not found" in result.stderr and "Traceback" not in result.stderr
