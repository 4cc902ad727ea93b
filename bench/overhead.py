"""Our training loop vs a hand-written PyTorch loop: same model, same tensors, same run.

    .venv/bin/python bench/overhead.py [--rounds 15] [--wall]

For each workload both loops train an identical copy of the model, one epoch at a time in
alternating order; the ratio is the median over the rounds of (ours / hand-written) for the
same round, so a machine whose speed drifts (other jobs, clock changes) hits both alike. Ours
is a whole one-epoch `modelforge.training.loop.fit` call as a run makes it (set-up, loop, the
TensorBoard hook, end-of-training hooks); validation is off in both so only the loop counts. Time is the
process's CPU time (all its threads, TensorBoard's writer included) at one torch thread, so
other jobs on a shared machine do not skew the ratio; `--wall` uses wall-clock time instead.
Floor: ours ≤ 1.05× the hand-written loop.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _machine import print_header
from torch import nn

from modelforge.config import TrainConfig
from modelforge.data.preprocess import InputSpec
from modelforge.data.split import batch_order
from modelforge.models import build_model
from modelforge.training.loop import fit
from modelforge.training.optim import LOSSES, build_optimizer
from modelforge.training.tracking import TensorBoardTracker

clock = time.process_time


def workloads() -> dict[str, tuple[nn.Module, dict[str, torch.Tensor], int]]:
    generator = torch.Generator().manual_seed(0)
    tabular = {"numeric": torch.randn(20_000, 32, generator=generator)}
    tabular["target"] = (tabular["numeric"][:, :4].sum(1) > 0).long()
    images = {"image": torch.randn(4_000, 1, 8, 8, generator=generator)}
    images["target"] = torch.randint(0, 10, (4_000,), generator=generator)
    torch.manual_seed(0)
    return {
        "mlp 20k×32, batch 64": (build_model("mlp", InputSpec(numeric_dim=32), 2, {"hidden": [128, 64]}), tabular, 64),
        "cnn digits 4k×8×8, batch 64": (build_model("cnn", InputSpec(image_shape=(1, 8, 8)), 10), images, 64),
    }


def hand_written_epoch(model: nn.Module, tensors: dict[str, torch.Tensor], cfg: TrainConfig, epoch: int) -> float:
    """One epoch of the plain loop (optimizer built outside the timing, as a person would once)."""
    loss_fn = nn.CrossEntropyLoss()
    optimizer = build_optimizer(model, cfg)
    inputs = {k: v for k, v in tensors.items() if k != "target"}
    target, n_rows = tensors["target"], len(tensors["target"])
    model.train()
    started = clock()
    order = batch_order(n_rows, shuffle=True, seed=0, epoch=epoch)
    for begin in range(0, n_rows, cfg.batch_size):
        rows = order[begin : begin + cfg.batch_size]
        loss = loss_fn(model({k: v[rows] for k, v in inputs.items()}), target[rows])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return clock() - started


def our_epoch(
    model: nn.Module, tensors: dict[str, torch.Tensor], cfg: TrainConfig, tracker: TensorBoardTracker
) -> float:
    """One epoch through `fit`, set-up, hooks and all, as a one-epoch run does it."""
    started = clock()
    fit(
        model,
        tensors,
        None,
        cfg.model_copy(update={"epochs": 1}),
        LOSSES.get("cross_entropy")(),
        score=lambda m, t: {},
        seed=0,
        log_epoch=lambda row: None,
        show_progress=False,
        hooks=[tracker],
    )
    return clock() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15, help="paired epochs (hand-written, ours) per workload")
    parser.add_argument("--wall", action="store_true", help="wall-clock time at torch's default threads")
    args = parser.parse_args()
    global clock
    if args.wall:
        clock = time.perf_counter
    else:
        torch.set_num_threads(1)
    timing = "wall-clock" if args.wall else "process CPU time"
    print_header()  # torch version and thread count included
    print(f"{args.rounds} paired epochs, medians of {timing}")
    print(f"{'workload':<30} {'hand-written s/epoch':>21} {'modelforge s/epoch':>19} {'ratio':>7}")
    worst = 0.0
    for name, (model, tensors, batch_size) in workloads().items():
        cfg = TrainConfig(batch_size=batch_size, lr=1e-3, optimizer="adamw", keep_best=False)
        hand_model, our_model = copy.deepcopy(model), copy.deepcopy(model)
        hand, ours, ratios = [], [], []
        with tempfile.TemporaryDirectory() as run_dir:
            steps = len(tensors["target"]) // cfg.batch_size
            tracker = TensorBoardTracker(Path(run_dir), steps_per_epoch=steps)
            # epoch by epoch, in alternating order, so drifting machine speed hits both loops alike
            for index in range(args.rounds + 1):
                if index % 2:
                    ours_s = our_epoch(our_model, tensors, cfg, tracker)
                    hand_s = hand_written_epoch(hand_model, tensors, cfg, index + 1)
                else:
                    hand_s = hand_written_epoch(hand_model, tensors, cfg, index + 1)
                    ours_s = our_epoch(our_model, tensors, cfg, tracker)
                if index:  # the first round warms both up
                    hand.append(hand_s)
                    ours.append(ours_s)
                    ratios.append(ours_s / hand_s)
            tracker.close()
        ratio = statistics.median(ratios)
        worst = max(worst, ratio)
        print(f"{name:<30} {statistics.median(hand):>21.4f} {statistics.median(ours):>19.4f} {ratio:>6.3f}×")
    print(f"worst ratio {worst:.3f}× (median of paired epochs; floor ≤ 1.05×): {'PASS' if worst <= 1.05 else 'FAIL'}")


if __name__ == "__main__":
    main()
