"""What checkpointing costs an epoch, measured by training the same config under three policies.

    .venv/bin/python bench/checkpoint_overhead.py [--epochs 12] [--repeats 3] [--threads 1]

Each workload trains through the normal recipe with epoch-end checkpoints
- off (train.checkpoint_budget 0: only the final checkpoint; the baseline),
- at the default frequency (checkpoint_budget 0.05: an epoch-end save is skipped while the time
  since the last one is under its measured cost ÷ 0.05),
- at every epoch end (checkpoint_budget 1),
interleaved over `--repeats` rounds. The time of epochs 2..N (from one epoch's end to the last's:
training, evaluation and the saves between) is compared, medians over the rounds; the ratio to
the baseline is the overhead. Time is the process's CPU time (the background writer thread
included), which other jobs on a shared machine skew far less than wall-clock (`--wall`).
The floor of issue 5: ≤ 5 % at the default frequency.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _machine import auto_line, print_header

from modelforge.config import load_config
from modelforge.training import checkpoint
from modelforge.training.recipe import train

ROOT = Path(__file__).resolve().parent.parent


def workloads(data_dir: Path) -> dict[str, dict[str, Any]]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    csv = data_dir / "breast_cancer.csv"
    frame.to_csv(csv, index=False)
    return {
        "mlp 64-32 · breast cancer (tiny epoch: worst case)": {
            "task": "classification",
            "data": {"train": str(csv), "target": "target"},
            "model": {"type": "mlp", "hidden": [64, 32]},
            "train": {"batch_size": 16},
        },
        "mlp 512-256 · breast cancer": {
            "task": "classification",
            "data": {"train": str(csv), "target": "target"},
            "model": {"type": "mlp", "hidden": [512, 256]},
            "train": {"batch_size": 16},
        },
        "cnn 32-64-128 · digits (quickstart)": {
            "task": "classification",
            "data": {"train": str(ROOT / "examples/data/digits.npz"), "target": "y"},
            "features": [{"name": "x", "type": "image"}],
            "model": {"type": "cnn", "channels": [32, 64, 128]},
            "train": {"batch_size": 64},
        },
    }


clock = time.process_time  # the process's CPU time, writer thread included; --wall: wall-clock

POLICIES = {"off": 0.0, "default": 0.05, "every epoch": 1.0}  # train.checkpoint_budget


def timed_run(raw: dict[str, Any], budget: float, epochs: int, out: Path) -> tuple[float, int]:
    """Seconds (of `clock`) from the first epoch's end to the last's, and how many saves the run made."""
    train_section = {**raw["train"], "epochs": epochs, "schedule": "cosine", "checkpoint_budget": budget}
    ends: list[float] = []
    saves: list[int] = []
    original = checkpoint.Checkpointer.save

    def counted(self: checkpoint.Checkpointer, *args: Any, **kwargs: Any) -> None:
        saves.append(1)
        original(self, *args, **kwargs)

    checkpoint.Checkpointer.save = counted  # type: ignore[method-assign]
    try:
        config = load_config({**raw, "train": train_section})
        train(config, out, show_progress=False, on_epoch=lambda _: ends.append(clock()))
    finally:
        checkpoint.Checkpointer.save = original  # type: ignore[method-assign]
    return ends[-1] - ends[0], len(saves)


def measure(name: str, raw: dict[str, Any], epochs: int, repeats: int, folder: Path) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {policy: [] for policy in POLICIES}
    saves: dict[str, list[int]] = {policy: [] for policy in POLICIES}
    for round_ in range(repeats):
        for policy, budget in POLICIES.items():
            out = folder / f"{len(name)}-{policy}-{round_}"
            elapsed, count = timed_run(raw, budget, epochs, out)
            print(f"{name}, {policy}, round {round_ + 1}: {auto_line(out)}", flush=True)
            seconds[policy].append(elapsed)
            saves[policy].append(count)
    median = {policy: statistics.median(values) for policy, values in seconds.items()}
    size = max(p.stat().st_size for p in folder.glob("*/checkpoints/step-*.safetensors"))
    return {
        "workload": name,
        "epoch_s": median["off"] / (epochs - 1),
        "size_mb": size / 1e6,
        "saves": statistics.median(saves["default"]),
        "default": median["default"] / median["off"] - 1,
        "every": median["every epoch"] / median["off"] - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of process CPU time")
    args = parser.parse_args()
    global clock
    if args.wall:
        clock = time.perf_counter
    torch.set_num_threads(args.threads)
    print_header()
    rows = []
    for name, raw in workloads(Path(tempfile.mkdtemp())).items():
        with tempfile.TemporaryDirectory() as folder:
            rows.append(measure(name, raw, args.epochs, args.repeats, Path(folder)))
            print(rows[-1], flush=True)
    timing = "wall-clock" if args.wall else "process CPU time"
    print(
        f"\ncheckpoint overhead ({args.threads} thread(s), {args.epochs} epochs, {timing}, "
        f"medians of {args.repeats} rounds)\n"
    )
    print("| workload | epoch s | checkpoint MB | saves at default | default (budget 0.05) | every epoch |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['workload']} | {row['epoch_s']:.3f} | {row['size_mb']:.2f} | {row['saves']:.0f} of {args.epochs} "
            f"| {row['default']:+.1%} | {row['every']:+.1%} |"
        )
    worst = max(row["default"] for row in rows)
    verdict = "met" if worst <= 0.05 else "NOT met"
    print(f"\nfloor ≤ 5 % per epoch at the default frequency: worst {worst:+.1%} → {verdict}")


if __name__ == "__main__":
    main()
