"""CLI verbs of fine-tuning: `modelforge merge-adapter RUN --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def merge_adapter(
    run: Annotated[Path, typer.Argument(help="a run trained with model.lora")],
    out: Annotated[Path, typer.Option(help="new run directory with the adapter folded into the weights")],
) -> None:
    """Fold a LoRA run's adapter into its weights (a plain run for export, serve, init_from)."""
    from modelforge.finetune.merge import merge_run

    merged = merge_run(run, out)
    typer.echo(f"merged {run} → {merged.path} ({merged.model_info['parameters']:,} parameters, no adapter)")


def register(app: typer.Typer) -> None:
    app.command(name="merge-adapter")(merge_adapter)
