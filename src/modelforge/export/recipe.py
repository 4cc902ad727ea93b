"""`modelforge export RUN --format onnx|torchscript|hf`: a registry of exporters, each checked for parity.

onnx and torchscript files are written beside a temporary name and renamed only when the
exported model reproduces the eager model on real rows of the run's test split; hf hands
over to `modelforge.export.hf.export_gpt_to_hf` (GPT runs).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelforge.export.parity import PARITY_ROWS, TOLERANCE, ExportError, Parity
from modelforge.registry import Registry


@dataclass(frozen=True)
class Exporter:
    filename: str
    export: Callable[[Any, dict[str, Any], Path], Parity]


def _onnx(run: Any, sample: dict[str, Any], dest: Path) -> Parity:
    from modelforge.export.onnx import export_onnx

    return export_onnx(run, sample, dest)


def _torchscript(run: Any, sample: dict[str, Any], dest: Path) -> Parity:
    from modelforge.export.torchscript import export_torchscript

    return export_torchscript(run, sample, dest)


EXPORTERS: Registry[Exporter] = Registry("export format")
EXPORTERS.add("onnx", Exporter("model.onnx", _onnx))
EXPORTERS.add("torchscript", Exporter("model.torchscript.pt", _torchscript))
FORMATS = (*EXPORTERS.names(), "hf")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    parity: Parity | None


def parity_sample(run: Any, rows: int = PARITY_ROWS) -> dict[str, Any]:
    """Up to `rows` real input rows: the run's test split (else validation, else train)."""
    from modelforge.compress.variant import inputs_only, run_splits

    splits = run_splits(run)
    source = splits.test if splits.test is not None else splits.valid if splits.valid is not None else splits.train
    return {k: v[:rows].contiguous() for k, v in inputs_only(source).items()}


def export_run(
    run_dir: str | Path, fmt: str, out: str | Path | None = None, tolerance: float = TOLERANCE
) -> ExportResult:
    """Export a run; raises ExportError (leaving nothing behind) when parity exceeds `tolerance`."""
    from modelforge.compress.variant import load_source_run
    from modelforge.tasks import task_of_run

    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    task = task_of_run(run_dir, "export")
    if fmt not in task.export_formats:
        raise ExportError(
            f"--format {fmt}: not for task {task.name} runs (they export as {', '.join(task.export_formats)})"
        )
    if fmt == "hf":
        return export_hf(run_dir, out)
    exporter = EXPORTERS.get(fmt)
    run = load_source_run(run_dir, "export")
    dest = Path(out) if out else run_dir / exporter.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    temp = Path(temp_name)
    os.close(handle)
    try:
        parity = exporter.export(run, parity_sample(run), temp)
        parity = Parity(parity.rows, parity.max_abs_diff, tolerance)
        if not parity.ok:
            raise ExportError(f"export --format {fmt}: {parity.describe()}; nothing written")
        temp.replace(dest)
    finally:
        temp.unlink(missing_ok=True)
    return ExportResult(dest, parity)


def export_hf(run_dir: Path, out: str | Path | None) -> ExportResult:
    try:
        from modelforge.export.hf import export_gpt_to_hf
    except ImportError:
        raise ExportError("export --format hf: modelforge.export.hf (the GPT exporter) is not available") from None
    dest = Path(out) if out else run_dir / "hf"
    result = export_gpt_to_hf(run_dir, dest)
    return ExportResult(Path(result) if isinstance(result, str | Path) else dest, None)
