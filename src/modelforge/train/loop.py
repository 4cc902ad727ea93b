"""The supervised training loop, readable top to bottom.

autocast → forward → loss → backward → accumulate → clip → step → log → evaluate → keep best
→ early stop. Data are in-memory tensors; each epoch's row order is a pure function of
(seed, epoch).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from modelforge.config import TrainConfig
from modelforge.data.split import batch_order, iterate_batches
from modelforge.errors import ModelforgeError
from modelforge.train.optim import build_optimizer, build_schedule
from modelforge.train.progress import EpochProgress

Tensors = dict[str, torch.Tensor]
ScoreFn = Callable[[nn.Module, Tensors], dict[str, float]]
BatchTransform = Callable[[Tensors], Tensors]


class TrainingError(ModelforgeError):
    """Training cannot go on (for example a non-finite loss)."""


@dataclass
class LoopOutcome:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    steps: int = 0
    stopped_early: bool = False


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelforgeError("train.device: cuda was asked for but no CUDA device is available")
    return torch.device(name)


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def l1_penalty(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters() if p.ndim >= 2)  # type: ignore[return-value]


def monitored(cfg: TrainConfig) -> tuple[str, str]:
    """The metric that decides the best epoch and early stopping, and whether lower is better."""
    metric = cfg.early_stopping.metric if cfg.early_stopping else "valid_loss"
    mode = cfg.early_stopping.mode if cfg.early_stopping and cfg.early_stopping.mode else None
    return metric, mode or ("min" if metric.endswith(("loss", "mse", "rmse", "mae")) else "max")


def fit(
    model: nn.Module,
    train_set: Tensors,
    valid_set: Tensors | None,
    cfg: TrainConfig,
    loss_fn: nn.Module,
    score: ScoreFn,
    *,
    seed: int,
    log_epoch: Callable[[dict[str, Any]], None],
    show_progress: bool = True,
    augment: BatchTransform | None = None,
) -> LoopOutcome:
    device = pick_device(cfg.device)
    model.to(device)
    train_set = {k: v.to(device) for k, v in train_set.items()}
    loss_fn.to(device)
    optimizer = build_optimizer(model, cfg)
    n_rows = len(train_set["target"])
    batches_per_epoch = math.ceil(n_rows / cfg.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    scheduler = build_schedule(optimizer, cfg, total_steps, steps_per_epoch)
    autocast = autocast_context(cfg.precision, device)
    metric, mode = monitored(cfg)
    progress = EpochProgress(show_progress)
    outcome, best_state, epochs_without_gain = LoopOutcome(), None, 0

    for epoch in range(1, cfg.epochs + 1):
        model.train()
        progress.start(epoch, cfg.epochs, batches_per_epoch)
        started, running_loss, seen = time.perf_counter(), torch.zeros((), device=device), 0
        order = batch_order(n_rows, shuffle=True, seed=seed, epoch=epoch).to(device)
        for index, batch in enumerate(iterate_batches(train_set, order, cfg.batch_size)):
            target = batch.pop("target")
            if augment is not None:
                batch = augment(batch)
            with autocast:
                loss = loss_fn(model(batch), target)
            if cfg.l1:
                loss = loss + cfg.l1 * l1_penalty(model)
            if not torch.isfinite(loss):
                if cfg.on_nonfinite == "stop":
                    raise TrainingError(
                        f"loss is {loss.item()} at epoch {epoch} step {outcome.steps + 1}; "
                        "lower train.lr or set train.on_nonfinite: skip"
                    )
                optimizer.zero_grad(set_to_none=True)
                continue
            (loss / cfg.grad_accum).backward()
            running_loss += loss.detach() * len(target)
            seen += len(target)
            if (index + 1) % cfg.grad_accum == 0 or index + 1 == batches_per_epoch:
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                outcome.steps += 1
                if outcome.steps >= total_steps:
                    break
            progress.update(index + 1, seen, loss.detach())

        elapsed = time.perf_counter() - started
        row: dict[str, Any] = {"epoch": epoch, "step": outcome.steps, "train_loss": float(running_loss) / max(seen, 1)}
        if valid_set is not None:
            row.update(score(model, valid_set))
        row.update(lr=scheduler.get_last_lr()[0], samples_per_second=seen / max(elapsed, 1e-9), seconds=elapsed)
        outcome.history.append(row)
        progress.finish(row)
        log_epoch(row)

        value = row.get(metric)
        if value is not None and (
            outcome.best_value is None or (value < outcome.best_value if mode == "min" else value > outcome.best_value)
        ):
            outcome.best_value, outcome.best_epoch, epochs_without_gain = value, epoch, 0
            if cfg.keep_best:
                best_state = copy.deepcopy(model.state_dict())
        else:
            epochs_without_gain += 1
        if cfg.early_stopping and epochs_without_gain >= cfg.early_stopping.patience:
            outcome.stopped_early = True
            break
        if outcome.steps >= total_steps:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    return outcome


@torch.no_grad()
def forward_in_batches(
    model: nn.Module, inputs: Tensors, batch_size: int = 1024, precision: str = "fp32"
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
