"""TorchScript export (traced) with a parity check: `modelforge export RUN --format torchscript`.

The archive takes the input groups positionally, in sorted name order (image, numeric, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelforge.export.onnx import check_batches, check_exportable, exporting
from modelforge.export.parity import Parity, PositionalInputs

TORCHSCRIPT_FILE = "model.torchscript.pt"


def export_torchscript(run: Any, sample: dict[str, Any], dest: Path) -> Parity:
    import torch

    check_exportable(run.model_info, "torchscript")
    names = sorted(sample)
    wrapper = PositionalInputs(run.model, names).eval()
    with exporting(), torch.no_grad():
        traced = torch.jit.trace(wrapper, tuple(sample[n][:2] for n in names), check_trace=False)
        torch.jit.save(traced, str(dest))
        loaded = torch.jit.load(str(dest))

    def run_archive(batch: dict[str, Any]) -> Any:
        return loaded(*(batch[n] for n in names)).float().numpy()

    return check_batches(lambda batch: run.model(batch).float().numpy(), run_archive, sample)
