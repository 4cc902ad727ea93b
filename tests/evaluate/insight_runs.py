"""Shared pieces of the insight tests: training a run in-process, the CLI, Chromium screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SST2 = ROOT.parent / "shared" / "datasets" / "sst2" / "train.csv"
SHAKESPEARE = ROOT.parent / "shared" / "datasets" / "tinyshakespeare" / "input.txt"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def train_run(config: dict[str, Any], out: Path) -> Any:
    from modelforge.config import load_config
    from modelforge.training.recipe import train

    return train(load_config(config), out, show_progress=False)


def modelforge_cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: one thread is fastest on a shared machine
    return subprocess.run(
        [sys.executable, "-m", "modelforge", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def screenshot(html: Path, out: Path, height: int = 3000) -> Path:
    """A headless Chromium screenshot of a local HTML file (1200 px wide)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--screenshot={out}",
                f"--window-size=1200,{height}",
                html.resolve().as_uri(),
            ],
            capture_output=True,
            timeout=90,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert out.exists(), f"chromium wrote no screenshot of {html}"
    return out
