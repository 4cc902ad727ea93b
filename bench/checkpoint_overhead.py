"""What checkpointing costs an epoch, measured inside the same training run.

    .venv/bin/python bench/checkpoint_overhead.py [--epochs 9] [--threads 1]

Trains real configs through the normal recipe at the default checkpoint frequency (one save
per epoch end) with the checkpoint hook instrumented, and reports two figures per run:
- blocking: the time `Checkpointer.save` holds up the training thread (snapshot + waiting for
  the previous background write), as a share of the epoch;
- alternate epochs: saves are skipped after every other epoch, and the epochs that follow a save
  are compared with those that do not (median wall times, same run): the whole cost, background
  writer thread included.
Also the share at `checkpoint_every` = a tenth of an epoch (10 × the blocking time).
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

from modelforge.config import load_config
from modelforge.train import checkpoint
from modelforge.train.recipe import train

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


def instrument() -> list[float]:
    """Time every Checkpointer.save, and skip the epoch-end save after even epochs."""
    durations: list[float] = []
    original_save, original_after_epoch = checkpoint.Checkpointer.save, checkpoint.Checkpointer.after_epoch

    def save(self: checkpoint.Checkpointer, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        original_save(self, *args, **kwargs)
        durations.append(time.perf_counter() - started)

    def after_epoch(self: checkpoint.Checkpointer, parts: Any, state: Any, row: dict[str, Any]) -> None:
        if row["epoch"] % 2:
            original_after_epoch(self, parts, state, row)

    checkpoint.Checkpointer.save = save  # type: ignore[method-assign]
    checkpoint.Checkpointer.after_epoch = after_epoch  # type: ignore[method-assign]
    return durations


def measure(name: str, raw: dict[str, Any], epochs: int, out: Path, durations: list[float]) -> dict[str, Any]:
    raw = {**raw, "train": {**raw["train"], "epochs": epochs, "schedule": "cosine"}}
    durations.clear()
    ends: list[float] = []
    run = train(load_config(raw), out, show_progress=False, on_epoch=lambda row: ends.append(time.perf_counter()))
    # on_epoch runs just before the epoch-end save: the interval ends[i-1] → ends[i] is epoch i+1 (1-based)
    # plus the save after epoch i, which happens when i is odd
    after_save = [ends[i] - ends[i - 1] for i in range(2, len(ends)) if i % 2 == 1]
    after_none = [ends[i] - ends[i - 1] for i in range(2, len(ends)) if i % 2 == 0]
    epoch = statistics.median(after_none)
    save = statistics.median(durations)
    size = max(p.stat().st_size for p in (run.path / "checkpoints").glob("step-*.safetensors"))
    return {
        "workload": name,
        "epoch_s": epoch,
        "save_s": save,
        "size_mb": size / 1e6,
        "blocking": save / epoch,
        "alternate": statistics.median(after_save) / epoch - 1,
        "tenth_epoch": save * 10 / epoch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    durations = instrument()
    with tempfile.TemporaryDirectory() as folder:
        rows = [
            measure(name, raw, args.epochs, Path(folder) / f"run{i}", durations)
            for i, (name, raw) in enumerate(workloads(Path(folder)).items())
        ]
    print(f"\ncheckpoint overhead ({args.threads} thread(s), epochs 3..{args.epochs}, medians)\n")
    print(
        "| workload | epoch s | save blocks s | checkpoint MB | blocking, 1 / epoch | alternate epochs | 10 / epoch |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['workload']} | {row['epoch_s']:.3f} | {row['save_s']:.4f} | {row['size_mb']:.2f} "
            f"| {row['blocking']:.1%} | {row['alternate']:+.1%} | {row['tenth_epoch']:.1%} |"
        )
    worst = max(row["blocking"] for row in rows)
    verdict = "met" if worst <= 0.05 else "NOT met"
    print(f"\nfloor ≤ 5 % per epoch at the default frequency (blocking time): worst {worst:.1%} → {verdict}")


if __name__ == "__main__":
    main()
