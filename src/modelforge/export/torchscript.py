"""TorchScript export (traced) with a parity check: `modelforge export RUN --format torchscript`.

The archive takes the input groups positionally, in sorted name order (image, numeric, ...).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from modelforge.export.onnx import check_exportable
from modelforge.export.parity import Parity, PositionalInputs, compare

TORCHSCRIPT_FILE = "model.torchscript.pt"


def export_torchscript(run: Any, sample: dict[str, Any], dest: Path) -> Parity:
    import torch

    check_exportable(run.model_info, "torchscript")
    names = sorted(sample)
    wrapper = PositionalInputs(run.model, names).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit announces its deprecation
        traced = torch.jit.trace(wrapper, tuple(sample[n][:2] for n in names))
        torch.jit.save(traced, str(dest))
        loaded = torch.jit.load(str(dest))
        expected = wrapper(*(sample[n] for n in names)).float().numpy()
        actual = loaded(*(sample[n] for n in names)).float().numpy()
    return compare(expected, actual)
