"""TPE against random search at an equal trial budget, averaged over seeds.

A real `modelforge tune` study per (sampler, seed): an MLP on scikit-learn's digits (written
to CSV), searching lr, width/depth, dropout and weight decay; the figure is each study's best
validation loss. The same seed gives both samplers the same data split and the same training
seed, so the comparison is paired.

    .venv/bin/python bench/tune_samplers.py --seeds 5 --trials 20
    .venv/bin/python bench/tune_samplers.py --seed-start 3 --seeds 2   # seeds 3 and 4 only (split a long run)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from _machine import auto_summary, print_header


def write_digits(folder: Path) -> Path:
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    frame.columns = [c.replace("pixel_", "p") for c in frame.columns]
    path = folder / "digits.csv"
    frame.to_csv(path, index=False)
    return path


def write_config(folder: Path, csv: Path, epochs: int) -> Path:
    config = {
        "task": "classification",
        "data": {"train": str(csv), "target": "target", "split": {"valid": 0.2, "test": 0.2}},
        "model": {"type": "mlp"},
        # one torch thread: on a shared 2-core box two threads on this tiny MLP mostly wait for each other
        "train": {"epochs": epochs, "batch_size": 64, "threads": 1},
        "tune": {
            "space": {
                "train.lr": {"loguniform": [1.0e-5, 1.0]},
                "model.hidden": {"choice": [[16], [64], [256], [64, 32], [256, 128]]},
                "model.dropout": {"uniform": [0.0, 0.7]},
                "train.weight_decay": {"loguniform": [1.0e-6, 1.0]},
            },
            "metric": "valid_loss",
            "pruner": "none",
        },
    }
    path = folder / "digits-tune.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def best_value(config: Path, out: Path, sampler: str, seed: int, trials: int) -> float:
    import contextlib
    import io

    from modelforge.tune.study import plan_study, run_study

    plan, _ = plan_study(
        config,
        [f"seed={seed}", f"tune.seed={seed}"],
        out=out,
        sampler=sampler,
        trials=trials,
        study=f"{sampler}-{seed}",
    )
    with contextlib.redirect_stdout(io.StringIO()):
        study = run_study(plan)
    return float(study.best_value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (seeds seed-start .. +seeds-1)")
    args = parser.parse_args()
    print_header()

    with tempfile.TemporaryDirectory(prefix="tune-samplers-") as temp:
        folder = Path(temp)
        config = write_config(folder, write_digits(folder), args.epochs)
        results: dict[str, list[float]] = {"random": [], "tpe": []}
        started = time.perf_counter()
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            for sampler in results:
                value = best_value(config, folder / f"{sampler}-{seed}", sampler, seed, args.trials)
                results[sampler].append(value)
                trials = [trial for trial in (folder / f"{sampler}-{seed}" / "trials").glob("*") if trial.is_dir()]
                print(f"seed {seed}, {sampler}: {auto_summary(trials)}", flush=True)
            print(
                f"seed {seed}: best valid_loss  random {results['random'][-1]:.4f}  tpe {results['tpe'][-1]:.4f}",
                flush=True,
            )
        wins = sum(t < r for t, r in zip(results["tpe"], results["random"], strict=True))
        mean_random, mean_tpe = statistics.mean(results["random"]), statistics.mean(results["tpe"])
        print(f"\ndigits MLP, {args.trials} trials x {args.seeds} seeds, {args.epochs} epochs per trial")
        print(f"{'sampler':<8} {'mean best valid_loss':>22} {'stdev':>8}")
        for sampler, values in results.items():
            stdev = statistics.stdev(values) if len(values) > 1 else 0.0
            print(f"{sampler:<8} {statistics.mean(values):>22.4f} {stdev:>8.4f}")
        print(f"TPE better on {wins}/{args.seeds} seeds; mean best loss random/tpe = {mean_random / mean_tpe:.3f}x")
        print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
