"""`modelforge export RUN --format onnx|torchscript|bundle|hf`: a registry of exporters, each checked for parity.

onnx and torchscript files are written beside a temporary name and renamed only when the
exported model reproduces the eager model on real rows of the run's test split. Which graph
`onnx` writes is the task's (`Task.onnx_export`: input groups → outputs for classification and
regression, the KV-cache step for GPT runs, pair scores for recommenders, the decoder for
generators). bundle writes a folder that predicts without PyTorch (`modelforge.export.bundle`);
hf hands over to `modelforge.export.hf.export_gpt_to_hf` (GPT runs).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelforge.export.parity import PARITY_ROWS, TOLERANCE, ExportError, Parity
from modelforge.files import file_mode_for, naming
from modelforge.registry import Registry


@dataclass(frozen=True)
class Exporter:
    filename: str
    export: Callable[[Any, Path, Path], Parity]  # (task, run_dir, dest) -> parity of what it wrote


def _onnx(task: Any, run_dir: Path, dest: Path) -> Parity:
    from modelforge.tasks import load_entry

    assert task.onnx_export, f"task {task.name} lists onnx without an onnx_export entry"
    return load_entry(task.onnx_export)(run_dir, dest)  # type: ignore[no-any-return]


def _torchscript(task: Any, run_dir: Path, dest: Path) -> Parity:
    from modelforge.compress.variant import load_source_run
    from modelforge.export.torchscript import export_torchscript

    run = load_source_run(run_dir, "export")
    return export_torchscript(run, parity_sample(run), dest)


EXPORTERS: Registry[Exporter] = Registry("export format")
EXPORTERS.add("onnx", Exporter("model.onnx", _onnx))
EXPORTERS.add("torchscript", Exporter("model.torchscript.pt", _torchscript))
FORMATS = (*EXPORTERS.names(), "bundle", "hf")


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
    if fmt == "bundle":
        from modelforge.export.bundle import export_bundle

        return ExportResult(*export_bundle(run_dir, out, tolerance))
    exporter = EXPORTERS.get(fmt)
    dest = Path(out) if out else run_dir / exporter.filename
    if out is not None and dest.exists():
        raise ExportError(f"--out {dest}: already exists; choose a new path (nothing was written)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode_for(dest)
    try:
        handle, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as exc:
        raise naming(exc, dest) from None
    temp = Path(temp_name)
    os.close(handle)
    try:
        parity = exporter.export(task, run_dir, temp)
        parity = replace(parity, tolerance=tolerance)
        if not parity.ok:
            raise ExportError(f"export --format {fmt}: {parity.describe()}; nothing written")
        temp.chmod(mode)
        try:
            temp.replace(dest)
        except OSError as exc:  # named for the user's --out, not the temporary
            raise naming(exc, dest) from None
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
