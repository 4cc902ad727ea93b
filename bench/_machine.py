"""What every bench prints about the machine: the shared header, and what `auto` chose per trained run.

The bench scripts run as `.venv/bin/python bench/NAME.py`, so bench/ is sys.path[0] and they
`import _machine`. Importing it is cheap (torch loads when the header is printed), and it reads
environment.json as plain JSON: it never imports modelforge.training.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path


def print_header() -> None:
    """Print the machine header (CPU, speed flags, threads, fp32/bf16 matmul GFLOP/s, load) once, first."""
    from modelforge.hardware import machine_header  # imports torch and times two matmuls (about a second)

    print(machine_header(), flush=True)


def auto_line(run_dir: str | Path) -> str:
    """`auto chose: bf16, 2 threads (reason)` from the run's environment.json, or `auto: not used`."""
    try:
        environment = json.loads((Path(run_dir) / "environment.json").read_text())
    except (OSError, ValueError):
        return "auto: not used (no readable environment.json)"
    auto = environment.get("auto") if isinstance(environment, dict) else None
    if not isinstance(auto, dict) or not auto:
        return "auto: not used"
    chosen = []
    if auto.get("precision") is not None:
        chosen.append(str(auto["precision"]))
    if auto.get("threads") is not None:
        threads = auto["threads"]
        chosen.append(f"{threads} thread{'' if threads == 1 else 's'}")
    line = "auto chose: " + (", ".join(chosen) or "nothing recorded")
    why = [str(auto["reason"])] if auto.get("reason") else []
    if auto.get("cached"):
        why.append("cached probe")
    return f"{line} ({'; '.join(why)})" if why else line


def auto_summary(run_dirs: Iterable[str | Path]) -> str:
    """`auto_line` of many runs (a tune study's trials) on one line: each distinct choice with its count."""
    counts = Counter(auto_line(run_dir) for run_dir in sorted(map(Path, run_dirs)))
    if not counts:
        return "auto: no runs found"
    return "; ".join(f"{line} [{n} run{'' if n == 1 else 's'}]" for line, n in counts.items())
