"""modelforge: from raw data to a trained, evaluated, compressed and served model, one config.

    import modelforge
    run = modelforge.train("examples/quickstart.yaml", "runs/quickstart")
    run.evaluate(frame); run.predict(frame)
    run = modelforge.load_run("runs/quickstart")
    modelforge.report(run)  # runs/quickstart/report.html

Heavy imports (torch, pandas) happen on first use, so `import modelforge` and `modelforge --help`
stay fast. The training loop and recipes live in `modelforge.training`.
"""

from __future__ import annotations

from modelforge.api import load_run, report, train

__version__ = "0.1.0"

__all__ = ["__version__", "load_run", "report", "train"]
