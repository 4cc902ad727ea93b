"""`modelforge audit`: provenance printed; a changed or missing run file fails the audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from insight_runs import modelforge_cli

from modelforge.evaluate.audit import MANIFEST, audit_run
from modelforge.files import sha256_of


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


def outside_names(run_dir: Path, tmp_path: Path) -> list[str]:
    """Manifest names that leave the run: absolute, climbing out, and a symlink pointing out."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not the run's business\n")
    (run_dir / "link").symlink_to(secret)
    return [str(secret), "/etc/passwd", "../secret.txt", "checkpoints/../../secret.txt", "link"]


def test_a_tampered_manifest_cannot_make_audit_read_files_outside_the_run(classifier_run: Any, tmp_path: Path) -> None:
    run_dir = copy_run(classifier_run, tmp_path)
    names = outside_names(run_dir, tmp_path)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    for name in names:
        manifest["files"][name] = {"sha256": "0" * 64, "bytes": 1}
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    (run_dir / "added-link").symlink_to(tmp_path / "secret.txt")  # not in the manifest at all

    report = audit_run(run_dir)
    outside = {c.path: c for c in report.files if c.status == "outside"}
    assert set(outside) == {*names, "added-link"} and all(check.actual is None for check in outside.values())
    assert f"/etc/passwd: outside the run (tampered {MANIFEST}, or a symlink out); not read" in report.problems
    result = modelforge_cli("audit", str(run_dir))
    assert result.returncode == 1 and "audit: FAILED" in result.stdout and "Traceback" not in result.stderr
    for path in (tmp_path / "secret.txt", Path("/etc/passwd")):
        if path.is_file():
            assert sha256_of(path)[:16] not in result.stdout, path


def test_a_manifest_whose_files_are_not_a_mapping_fails_the_audit(classifier_run: Any, tmp_path: Path) -> None:
    run_dir = copy_run(classifier_run, tmp_path)
    for files in ([], {"config.yaml": "not an entry"}):
        (run_dir / MANIFEST).write_text(json.dumps({"algorithm": "sha256", "files": files}))
        report = audit_run(run_dir)
        assert not report.passed
    assert report.files[0].status == "modified" and report.files[0].recorded is None
