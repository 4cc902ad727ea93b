"""Helpers of the transfer-learning tests: the CLI as a subprocess, a tiny MiniLM config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def modelforge(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "modelforge", *args], capture_output=True, text=True, env=env)


def tiny_config(data: Path, **model: object) -> dict[str, object]:
    return {
        "task": "classification",
        "data": {"train": str(data), "target": "label", "split": {"valid": 0.2, "test": 0.2}},
        "features": [{"name": "text", "type": "text", "tokenizer": "hf", "max_length": 24}],
        "model": {"type": "hf_encoder", **model},
        "train": {"epochs": 1, "batch_size": 32, "lr": 1e-3, "threads": 1},
    }


def modelforge_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI's entry point (`modelforge.cli.main`) in this process: no interpreter/torch start-up per case."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

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
