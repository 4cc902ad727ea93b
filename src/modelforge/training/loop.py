"""The supervised training loop, readable top to bottom.

mixup → autocast → forward → loss → backward → accumulate → clip → step → weight average → hooks (checkpoint,
track) → log → evaluate → keep best → early stop → final hooks. Data are in-memory tensors; each epoch's row order
is a pure function of (seed, epoch), so a run resumed from a checkpoint (epoch, batch index,
weights, optimizer, scheduler, RNG) replays exactly what the uninterrupted run would have done.
Under torchrun each rank takes its share of every global batch (see training/distributed.py).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from modelforge.config import TrainConfig
from modelforge.data.split import balanced_order, balanced_rows, batch_order
from modelforge.errors import ModelforgeError
from modelforge.inference import autocast_context, pick_device
from modelforge.models.ensemble import ensemble_loss, ensemble_size
from modelforge.training.average import WeightAverage, scored_model
from modelforge.training.checkpoint import Checkpoint, TrainingParts, TrainingState
from modelforge.training.distributed import Topology, wrap_model
from modelforge.training.mixup import blend_inputs, blended_loss, draw_blend
from modelforge.training.optim import build_optimizer, build_schedule
from modelforge.training.progress import EpochProgress
from modelforge.training.threads import ThreadChooser

Tensors = dict[str, torch.Tensor]
ScoreFn = Callable[[nn.Module, Tensors], dict[str, float]]
BatchTransform = Callable[[Tensors], Tensors]
LoopOutcome = TrainingState  # what `fit` returns: history, best epoch and value, steps, stopped_early


class TrainingError(ModelforgeError):
    """Training cannot go on (for example a non-finite loss)."""


@dataclass
class StepInfo:
    """What one optimizer step saw, for hooks that log it (tensors: read them only when logging).

    The gradients are still in the model while hooks run; `grad_norm` is the pre-clip norm when
    train.grad_clip computed it, else None (a hook that logs it calls `gradient_norm`).
    """

    loss: float
    grad_norm: torch.Tensor | None
    rows: int
    lr: float


class LoopHook(Protocol):
    """Called by the loop after each optimizer step, after each epoch's evaluation, and once when
    the last epoch is done (before the best weights are restored)."""

    def after_step(self, parts: TrainingParts, state: TrainingState, step: StepInfo) -> None: ...

    def after_epoch(self, parts: TrainingParts, state: TrainingState, row: dict[str, Any]) -> None: ...

    def after_training(self, parts: TrainingParts, state: TrainingState) -> None: ...


def l1_penalty(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters() if p.ndim >= 2)  # type: ignore[return-value]


def monitored(cfg: TrainConfig) -> tuple[str, str]:
    """The metric that decides the best epoch and early stopping, and whether lower is better."""
    metric = cfg.early_stopping.metric if cfg.early_stopping else "valid_loss"
    mode = cfg.early_stopping.mode if cfg.early_stopping and cfg.early_stopping.mode else None
    return metric, mode or ("min" if metric.endswith(("loss", "mse", "rmse", "mae")) else "max")


def epoch_order(
    sampled: torch.Tensor | None,
    cfg: TrainConfig,
    seed: int,
    epoch: int,
    n_rows: int,
    lengths: torch.Tensor | None,
    members: int = 1,
) -> torch.Tensor:
    """The rows of one epoch in training order: class-balanced with `train.sampling`, else shuffled
    (bucketed by length with `train.bucket_by_length`). An ensemble's members each take their own
    order (seed + member), side by side: each run of members × batch_size rows holds one batch of each."""
    orders = [
        balanced_order(sampled, cfg.sampling, seed + member, epoch)
        if sampled is not None and cfg.sampling
        else batch_order(n_rows, True, seed + member, epoch, lengths, cfg.batch_size)
        for member in range(members)
    ]
    if members == 1:
        return orders[0]
    batches = zip(*(order.split(cfg.batch_size) for order in orders), strict=True)  # every order has every row
    return torch.cat([torch.cat(side_by_side) for side_by_side in batches])


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
    resume: Checkpoint | None = None,
    hooks: Sequence[LoopHook] = (),
    topology: Topology | None = None,
) -> TrainingState:
    topology = topology or Topology(device=pick_device(cfg.device))
    device = topology.device
    model.to(device)
    train_set = {k: v.to(device) for k, v in train_set.items()}
    loss_fn = ensemble_loss(model, loss_fn).to(device)
    members = ensemble_size(model)
    trained = wrap_model(model, cfg.strategy, topology, cfg.precision)  # DDP / FSDP under torchrun
    optimizer = build_optimizer(model, cfg)
    n_rows = len(train_set["target"])
    text = train_set.get("text")
    lengths = (text != 0).sum(1).cpu() if cfg.bucket_by_length and text is not None and text.dim() == 2 else None
    sampled = train_set["target"].cpu() if cfg.sampling else None  # class-balanced epochs (train.sampling)
    epoch_rows = balanced_rows(sampled, cfg.sampling) if sampled is not None and cfg.sampling else n_rows
    batches_per_epoch = math.ceil(epoch_rows / cfg.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    scheduler = build_schedule(optimizer, cfg, total_steps, steps_per_epoch)
    average = WeightAverage.for_config(cfg, model, total_steps)
    parts = TrainingParts(model, optimizer, scheduler, average=average)
    state = TrainingState()
    if resume is not None:
        state = resume.restore(parts, topology)
    autocast = autocast_context(cfg.precision, device)
    metric, mode = monitored(cfg)
    progress = EpochProgress(show_progress and topology.is_writer)
    chooser = ThreadChooser.for_config(cfg, device)

    for epoch in range(state.epoch, cfg.epochs + 1):
        if state.stopped_early or state.steps >= total_steps:
            break
        model.train()
        progress.start(epoch, cfg.epochs, batches_per_epoch)
        started, rows_done = time.perf_counter(), 0
        order = epoch_order(sampled, cfg, seed, epoch, n_rows, lengths, members).to(device)
        step_rows = cfg.batch_size * members  # an ensemble's step: one batch per member
        for index in range(state.batch, batches_per_epoch):
            with chooser.timed((epoch - 1) * batches_per_epoch + index):
                global_rows = order[index * step_rows : (index + 1) * step_rows]
                rows = topology.shard(global_rows)
                batch = {name: value[rows] for name, value in train_set.items()}
                target = batch.pop("target")
                if augment is not None:
                    batch = augment(batch)
                blend = draw_blend(len(target), cfg.mixup, device) if cfg.mixup else None
                if blend is not None:
                    batch = blend_inputs(batch, blend)
                with autocast:
                    output = trained(batch)
                    loss = loss_fn(output, target) if blend is None else blended_loss(loss_fn, output, target, blend)
                if cfg.l1:
                    loss = loss + cfg.l1 * l1_penalty(model)
                loss_value = loss.item()  # the step's one host sync: the non-finite check and the epoch's sum
                if topology.any(not math.isfinite(loss_value)):
                    if cfg.on_nonfinite == "stop":
                        raise TrainingError(
                            f"loss is {loss_value} at epoch {epoch} step {state.steps + 1}; "
                            "lower train.lr or set train.on_nonfinite: skip"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    state.batch, state.skipped = index + 1, state.skipped + 1
                    continue
                weight = topology.batch_weight(len(target), len(global_rows))
                scale = weight / cfg.grad_accum
                (loss * scale if scale != 1.0 else loss).backward()
                state.running_loss += loss_value * len(target)
                state.seen += len(target)
                rows_done += len(target)
                state.batch = index + 1
                if state.batch % cfg.grad_accum == 0 or state.batch == batches_per_epoch:
                    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    state.steps += 1
                    if average is not None:
                        average.update(model, state.steps)
                    step = StepInfo(loss_value, grad_norm, len(global_rows), optimizer.param_groups[0]["lr"])
                    for hook in hooks:
                        hook.after_step(parts, state, step)
                    optimizer.zero_grad(set_to_none=True)
                    if state.steps >= total_steps:
                        break
                progress.update(index + 1, rows_done, loss_value)

        elapsed = time.perf_counter() - started
        seen = int(topology.sum(torch.tensor(float(state.seen))).item())
        loss_sum = float(topology.sum(torch.tensor(state.running_loss, dtype=torch.float64, device=device)))
        train_loss = loss_sum / seen if seen else math.nan  # nan: every batch was skipped
        row: dict[str, Any] = {"epoch": epoch, "step": state.steps, "train_loss": train_loss}
        if chooser.measures:
            row["threads"] = chooser.chosen
        if state.skipped:
            row.update(skipped_batches=state.skipped)
        scored = scored_model(model, average)  # the weight average once it has begun
        if valid_set is not None:
            row.update(score(scored, valid_set))
        row.update(lr=optimizer.param_groups[0]["lr"])
        row.update(samples_per_second=rows_done * topology.world / max(elapsed, 1e-9))
        row.update(seconds=elapsed)
        state.history.append(row)
        if topology.is_writer:
            progress.finish(row)
        log_epoch(row)

        improved = keep_if_best(
            state, scored, row.get(metric), epoch, lower_is_better=mode == "min", keep_weights=cfg.keep_best
        )
        state.epochs_without_gain = 0 if improved else state.epochs_without_gain + 1
        state.stopped_early = bool(cfg.early_stopping and state.epochs_without_gain >= cfg.early_stopping.patience)
        if state.stopped_early and topology.is_writer:
            progress.note(early_stop_message(cfg, metric, state))
        state.epoch, state.batch, state.seen = epoch + 1, 0, 0
        state.running_loss = 0.0
        for hook in hooks:
            hook.after_epoch(parts, state, row)

    end_training(model, parts, state, hooks)
    return state


def early_stop_message(cfg: TrainConfig, metric: str, state: TrainingState) -> str:
    """Why training ended before train.epochs: the metric, the patience and the epoch whose weights count."""
    patience = cfg.early_stopping.patience if cfg.early_stopping else 0
    best = f"{state.best_value:.4g}" if isinstance(state.best_value, int | float) else "none"
    kept = "its weights are kept" if cfg.keep_best else "the last epoch's weights are kept (train.keep_best: false)"
    return (
        f"early stopping after epoch {state.history[-1]['epoch']}: {metric} did not improve for {patience} epochs "
        f"(train.early_stopping.patience); best {metric} {best} at epoch {state.best_epoch}, {kept}"
    )


def keep_if_best(
    state: TrainingState,
    model: nn.Module,
    value: float | None,
    epoch: int,
    *,
    lower_is_better: bool,
    keep_weights: bool,
) -> bool:
    """Make `epoch` the best one when `value` beats state.best_value (None never does); True when it did.
    With `keep_weights` a copy of the weights goes with it, for end_training to restore."""
    if value is None:
        return False
    best = state.best_value
    if best is not None and not (value < best if lower_is_better else value > best):
        return False
    state.best_value, state.best_epoch = value, epoch
    if keep_weights:
        state.best_weights = copy.deepcopy(model.state_dict())
    return True


def close_epoch(
    parts: TrainingParts,
    state: TrainingState,
    row: dict[str, Any],
    hooks: Sequence[Any],
    log_epoch: Callable[[dict[str, Any]], None],
    value: float | None,
    *,
    lower_is_better: bool,
    keep_weights: bool,
) -> bool:
    """The end of an epoch in the task loops that log one row an epoch: the row to the history and the
    log, the best epoch kept (`keep_if_best` on `value`; the weight average's weights once it has begun),
    the epoch's counters reset, then the hooks — in that order, so a checkpoint holds the finished epoch.
    True when the epoch was the best so far."""
    state.history.append(row)
    log_epoch(row)
    improved = keep_if_best(
        state,
        scored_model(parts.model, parts.average),
        value,
        row["epoch"],
        lower_is_better=lower_is_better,
        keep_weights=keep_weights,
    )
    state.epoch, state.batch, state.sums, state.seen, state.running_loss = row["epoch"] + 1, 0, {}, 0, 0.0
    for hook in hooks:
        hook.after_epoch(parts, state, row)
    return improved


def end_training(model: nn.Module, parts: TrainingParts, state: TrainingState, hooks: Sequence[Any]) -> None:
    """After the last epoch of any loop: the hooks' after_training, then the best epoch's weights if kept,
    else the weight average (train.average_from) once it has begun."""
    for hook in hooks:
        hook.after_training(parts, state)
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    elif parts.average is not None and parts.average.count:
        model.load_state_dict(parts.average.module.state_dict())


def gradient_norm(model: nn.Module) -> torch.Tensor:
    """Total gradient norm; a tensor, so no device sync here."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return nn.utils.get_total_norm(grads) if grads else torch.zeros(())
