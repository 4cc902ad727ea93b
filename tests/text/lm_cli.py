"""Run the modelforge CLI in a subprocess (shared by the language-model tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def modelforge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelforge", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )
