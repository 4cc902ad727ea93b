"""CLI verb `export` (typer and stdlib only at import time)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    run: Annotated[Path, typer.Argument(help="trained run directory")],
    format_: Annotated[str, typer.Option("--format", help="onnx | torchscript | hf")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="output file (folder for hf); default: inside the run")] = None,
    tolerance: Annotated[float, typer.Option(help="largest allowed max abs difference vs the eager model")] = 1e-4,
) -> None:
    """Export a run to ONNX / TorchScript (parity-checked on real rows) or a Hugging Face folder (GPT)."""
    from modelforge.export.recipe import export_run

    result = export_run(run, format_, out, tolerance)
    if result.parity is not None:
        typer.echo(result.parity.describe())
    typer.echo(f"wrote {result.path}")


def register(app: typer.Typer) -> None:
    app.command(name="export")(export)
