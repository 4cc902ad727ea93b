"""modelforge: from raw data to a trained, evaluated, compressed and served model, one config.

    import modelforge
    run = modelforge.train("examples/quickstart.yaml")
    run.evaluate(frame); run.predict(frame)
    run = modelforge.load_run("runs/quickstart")

Heavy imports (torch, pandas) happen on first use, so `modelforge --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modelforge import train  # the training package, callable as modelforge.train(config)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from modelforge.run import Run


def load_run(path: str | Path) -> Run:
    """Load a finished run directory for predict/evaluate."""
    from modelforge.run import load_run as load

    return load(path)


__all__ = ["__version__", "load_run", "train"]
