"""`modelforge audit`: a run's provenance, and proof that its files are the ones training wrote.

Training ends by writing `files.json`, the sha256 and size of every file in the run
directory. `audit_run` recomputes them: a file that changed or disappeared fails the
audit; files added later (a report, say) are listed but do not fail it. The data files
named in `environment.json` are re-hashed too, so a changed training set is reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelforge.errors import RunError
from modelforge.files import MANIFEST, file_sha256, inside, read_yaml_file, run_files, sha256_of


@dataclass
class FileCheck:
    path: str
    status: str  # ok | modified | missing | added | outside (a manifest name that leaves the run)
    recorded: str | None = None
    actual: str | None = None


@dataclass
class AuditReport:
    run_dir: Path
    provenance: dict[str, Any]
    files: list[FileCheck] = field(default_factory=list)
    data: list[FileCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "run": str(self.run_dir),
            "passed": self.passed,
            "problems": self.problems,
            "provenance": self.provenance,
            "files": [vars(f) for f in self.files],
            "data": [vars(f) for f in self.data],
        }


def audit_run(run_dir: str | Path) -> AuditReport:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run directory not found")
    if not (run_dir / "config.yaml").is_file():
        raise RunError(f"{run_dir}: not a run directory (no config.yaml)")
    report = AuditReport(run_dir, provenance(run_dir))
    manifest_path = run_dir / MANIFEST
    if not manifest_path.is_file():
        report.problems.append(f"{MANIFEST} is missing: the files cannot be verified (run trained before manifests?)")
    else:
        try:
            recorded = json.loads(manifest_path.read_text())["files"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            recorded = None
        if not isinstance(recorded, dict):
            recorded = {}
            report.problems.append(f"{MANIFEST} is not a valid manifest")
        report.files = check_files(run_dir, recorded)
        for check in report.files:
            if check.status in ("modified", "missing"):
                report.problems.append(f"{check.path}: {check.status} since training")
            elif check.status == "outside":
                reason = f"outside the run (tampered {MANIFEST}, or a symlink out); not read"
                report.problems.append(f"{check.path}: {reason}")
    report.data = check_data(report.provenance.get("data") or {})
    return report


def check_files(run_dir: Path, recorded: dict[str, dict[str, Any]]) -> list[FileCheck]:
    checks = []
    for name, entry in sorted(recorded.items()):
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        path = inside(run_dir, name)
        if path is None:  # a tampered manifest naming /etc/passwd or ../..: never hash (or print) what it points at
            checks.append(FileCheck(name, "outside", digest))
            continue
        if not path.is_file():
            checks.append(FileCheck(name, "missing", digest))
            continue
        actual = sha256_of(path)
        checks.append(FileCheck(name, "ok" if actual == digest else "modified", digest, actual))
    for path in run_files(run_dir):
        name = str(path.relative_to(run_dir))
        if name not in recorded:
            inward = inside(run_dir, name) is not None  # a symlink added to point out of the run is not read
            checks.append(FileCheck(name, "added" if inward else "outside", None, sha256_of(path) if inward else None))
    return checks


def check_data(hashes: dict[str, str]) -> list[FileCheck]:
    """Training data as recorded in environment.json, against the files as they are now."""
    checks = []
    for name, recorded in hashes.items():
        path = Path(name)
        if not path.exists():
            checks.append(FileCheck(name, "missing", recorded))
            continue
        actual = file_sha256(path)
        checks.append(FileCheck(name, "ok" if actual == recorded else "modified", recorded, actual))
    return checks


def provenance(run_dir: Path) -> dict[str, Any]:
    environment = _read_json(run_dir / "environment.json")
    config = read_yaml_file(run_dir / "config.yaml", RunError) or {}
    evaluation = _read_json(run_dir / "eval.json")
    return {
        "task": config.get("task"),
        "model": (config.get("model") or {}).get("type"),
        "seed": config.get("seed"),
        "config_sha256": sha256_of(run_dir / "config.yaml"),
        "git_commit": environment.get("git_commit"),
        "python": environment.get("python"),
        "platform": environment.get("platform"),
        "host": environment.get("host"),
        "versions": environment.get("versions") or {},
        "started_at": environment.get("started_at"),
        "finished_at": environment.get("finished_at"),
        "train_seconds": evaluation.get("train_seconds"),
        "data": environment.get("data") or {},
        "finished": (run_dir / "model.json").is_file(),
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def format_audit(report: AuditReport) -> str:
    """The audit as plain text lines for the terminal."""
    p = report.provenance
    lines = [
        f"run        {report.run_dir}",
        f"task       {p['task']} · model {p['model']} · seed {p['seed']} · finished {p['finished']}",
        f"config     sha256 {p['config_sha256']}",
        f"code       git commit {p['git_commit'] or 'unknown'}",
        f"python     {p['python']} on {p['platform']} ({p['host']})",
        "versions   " + ", ".join(f"{k} {v}" for k, v in p["versions"].items()),
        f"times      started {p['started_at']} · finished {p['finished_at']} · train {p['train_seconds']} s",
    ]
    for check in report.data:
        changed = "" if check.status == "ok" else f"  ({check.status} since training: warning)"
        lines.append(f"data       {check.path}  sha256 {check.recorded}{changed}")
    if report.files:
        lines.append("files")
        for check in report.files:
            digest = (check.actual or check.recorded or "")[:16]
            lines.append(f"  {check.status:<9}{check.path}  {digest}")
    lines.append(
        "audit: passed, every recorded file matches its hash"
        if report.passed
        else "audit: FAILED\n" + "\n".join(f"  - {problem}" for problem in report.problems)
    )
    return "\n".join(lines)
