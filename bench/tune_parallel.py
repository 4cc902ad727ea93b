"""`modelforge tune --jobs 2` against `--jobs 1`: trials completed per second on a small MLP.

The same random-sampler study (breast cancer, a small MLP, a few epochs per trial) runs with
one worker (torch threads = all cores) and with two (threads = cores // 2 each). Two figures:
trial throughput (trials over the span from the first trial's start to the last one's end)
and the whole command's wall time (including the workers' start-up). The load average is
printed because on a shared machine the ratio depends on what else runs.

    .venv/bin/python bench/tune_parallel.py --trials 16
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def write_config(folder: Path, epochs: int) -> Path:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.to_csv(folder / "breast_cancer.csv", index=False)
    config = {
        "task": "classification",
        "data": {"train": str(folder / "breast_cancer.csv"), "target": "target"},
        "model": {"type": "mlp", "hidden": [64, 32]},
        "train": {"epochs": epochs, "batch_size": 32},
        "tune": {
            "space": {
                "train.lr": {"loguniform": [1.0e-4, 1.0e-1]},
                "model.dropout": {"uniform": [0.0, 0.5]},
            },
            "metric": "valid_loss",
            "sampler": "random",
            "pruner": "none",
        },
    }
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(config: Path, out: Path, jobs: int, trials: int) -> tuple[float, float]:
    """(command wall seconds, trial span seconds) of one `modelforge tune` run."""
    import optuna

    command = [sys.executable, "-m", "modelforge", "tune", str(config), "--out", str(out)]
    command += ["--jobs", str(jobs), "--trials", str(trials), "--study", f"jobs{jobs}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=f"jobs{jobs}", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == trials and all(t.state.name == "COMPLETE" for t in study.trials)
    first = min(t.datetime_start for t in study.trials)
    last = max(t.datetime_complete for t in study.trials)
    return wall, (last - first).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="alternate jobs 1 / 2 this many times; best of each")
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="tune-parallel-") as temp:
        folder = Path(temp)
        config = write_config(folder, args.epochs)
        best: dict[int, tuple[float, float]] = {}
        for repeat in range(args.repeats):
            for jobs in (1, 2):
                wall, span = run(config, folder / f"jobs{jobs}-{repeat}", jobs, args.trials)
                print(
                    f"jobs {jobs}: {args.trials} trials, span {span:.1f} s ({args.trials / span:.2f} trials/s), "
                    f"command {wall:.1f} s"
                )
                if jobs not in best or span < best[jobs][1]:
                    best[jobs] = (wall, span)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"trial throughput --jobs 2 / --jobs 1: {best[1][1] / best[2][1]:.2f}x")
    print(f"command wall time --jobs 1 / --jobs 2: {best[1][0] / best[2][0]:.2f}x")


if __name__ == "__main__":
    main()
