"""Running a trained model: device, precision, CPU threads, batched forward passes, raw outputs → predictions.

Training, evaluation, compression, export and serving all run models forward; they import these
helpers from here rather than from the training loop, so that a server never depends on `train/`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelforge.errors import ModelforgeError
from modelforge.tasks import predicts_label_sets, predicts_values


def pick_device(name: str) -> torch.device:
    """The torch device for train.device: "auto" is CUDA when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelforgeError("train.device: cuda was asked for but no CUDA device is available")
    return torch.device(name)


def set_cpu_threads(threads: int | str | None) -> None:
    """Pin torch's CPU thread count to `threads`; None or 0 keep torch's default, and "auto" / "adaptive"
    (chosen by training's probe / re-measured as training runs) are left to their callers."""
    if isinstance(threads, int) and threads > 0:
        torch.set_num_threads(threads)


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether bf16 matmuls run in hardware: CUDA with bf16, or a CPU with AVX512-BF16 / AMX.

    Elsewhere oneDNN emulates bf16 and a matmul is slower than fp32 (14x measured on an AVX2 EPYC).
    """
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a trained model runs in: `auto` (which training resolved by timing, see
    training/probe.py) is bf16 on a GPU that has it and fp32 on a CPU, so a prediction, an export's
    parity and an evaluation do not change with the CPU they run on."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and native_bf16("cuda") else "fp32"
    return precision


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast when `precision` resolves to bf16 on `device`, else a context that does nothing."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def forward_in_batches(
    model: nn.Module, inputs: dict[str, torch.Tensor], batch_size: int = 1024, precision: str = "fp32"
) -> torch.Tensor:
    """Model outputs for many rows, in eval mode, as float32 on the CPU."""
    model.eval()
    first = next(model.parameters(), None)  # a fully int8-quantized model has no float parameters
    device = first.device if first is not None else torch.device("cpu")
    n_rows = len(next(iter(inputs.values())))
    outputs = []
    with autocast_context(precision, device):
        for begin in range(0, n_rows, batch_size):
            batch = {k: v[begin : begin + batch_size].to(device) for k, v in inputs.items()}
            outputs.append(model(batch).float().cpu())
    return torch.cat(outputs)


def outputs_to_predictions(raw: Any, task: str, preprocessor: Any) -> np.ndarray:
    """A supervised model's raw outputs as class probabilities (N×K), label probabilities (N×K, one sigmoid
    per label: multilabel) or predicted values (N, regression)."""
    if predicts_values(task):
        return preprocessor.target_encoder.inverse(raw.squeeze(-1).double().numpy())
    if predicts_label_sets(task):
        return torch.sigmoid(raw.double()).numpy()
    if raw.shape[-1] == 1:
        positive = torch.sigmoid(raw.squeeze(-1).double())
        return torch.stack([1 - positive, positive], dim=1).numpy()
    return torch.softmax(raw.double(), dim=-1).numpy()


@dataclass(frozen=True)
class Workload:
    """What `modelforge benchmark` times on a run whose requests are not rows of a table (a language
    model, a recommender, a generator; the task registry's `benchmark` entry builds it): `one(i)`
    answers one request, `batch(i)` answers `batch_rows` of them at once (i counts the calls).
    The run's module, or its exported graph standing in for it, does the work either way."""

    row: str  # what one request is, for the table's readers ("one image sampled")
    one: Callable[[int], Any]
    batch: Callable[[int], Any]
    batch_rows: int = 64
