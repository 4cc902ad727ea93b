"""A PostgreSQL-backed study with two worker processes (Debian's postgresql, started on loopback)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tune_configs import modelforge, write_config


def postgres_binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away cluster in a temp folder; as root, postgres runs as the `postgres` user."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install 'modelforge[tune]')")
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="modelforge-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        runuser = shutil.which("runuser")
        try:
            shutil.chown(folder, "postgres", "postgres")
        except (LookupError, OSError):
            runuser = None
        if runuser is None:
            shutil.rmtree(folder, ignore_errors=True)
            pytest.skip("running as root without a 'postgres' user and runuser to start PostgreSQL as")
        as_user = [runuser, "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off"
    try:
        for command in (
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            [pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "-o", options, "start"],
        ):
            done = subprocess.run(as_user + command, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                pytest.skip(f"PostgreSQL could not start: {Path(command[0]).name}: {last[0]}")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # three processes import torch, plus initdb: ~40 s of CPU on 2 cores
def test_postgres_study_with_two_workers(postgres_url: str, breast_cancer_csv: Path, tmp_path: Path) -> None:
    import optuna

    config = write_config(tmp_path, breast_cancer_csv)
    study_dir = tmp_path / "study"
    args = ["--out", str(study_dir), "--storage", postgres_url, "--jobs", "2", "--trials", "4", "--study", "pg"]
    result = modelforge("tune", str(config), *args)
    assert result.returncode == 0, result.stderr

    study = optuna.load_study(study_name="pg", storage=postgres_url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    workers = {t.user_attrs["worker"]["pid"] for t in study.trials}
    assert len(workers) == 2, f"trials ran in {workers}"
    assert (study_dir / "best.yaml").is_file()
    summary = modelforge("tune", "--summary", str(study_dir))
    assert summary.returncode == 0, summary.stderr
    assert "trials: 4 (4 complete)" in summary.stdout
