"""Run the modelforge CLI from tests.

`modelforge(...)` is a real subprocess (`python -m modelforge`); `modelforge_in_process(...)` calls
the same entry point, `modelforge.cli.main`, in this process — no interpreter and torch start-up
(~3 s of CPU each), for the many small bad-input cases. Both run offline (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path


def modelforge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "modelforge", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def modelforge_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    from modelforge.cli import main

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    stdout, stderr, saved_argv, code = io.StringIO(), io.StringIO(), sys.argv, 0
    sys.argv = ["modelforge", *args]
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.argv = saved_argv
    return subprocess.CompletedProcess(["modelforge", *args], code, stdout.getvalue(), stderr.getvalue())


def newest_step(run_dir: Path) -> int:
    """The step count of a run directory's newest checkpoint (-1 before the first)."""
    from modelforge.training.checkpoint import list_checkpoints

    files = list_checkpoints(run_dir / "checkpoints")
    return int(files[0].name[len("step-") : -len(".safetensors")]) if files else -1


def signal_when(
    process: subprocess.Popen[str], ready: Callable[[], bool], signum: int = signal.SIGKILL, timeout: float = 120
) -> str:
    """Send `signum` as soon as `ready()` holds (polled every ~1 ms) and return what the run wrote to stderr;
    fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            process.send_signal(signum)
            return process.communicate(timeout=60)[1]
        time.sleep(0.001)
    _, err = process.communicate(timeout=60)
    raise AssertionError(f"the run ended (rc {process.returncode}) before the signal could be sent: {err[-500:]}")
