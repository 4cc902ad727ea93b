"""`modelforge tune --jobs 2` against `--jobs 1`: trials completed per second on a small MLP.

The same random-sampler study (breast cancer, a small MLP, a few epochs per trial) runs with
one worker (torch threads = all cores, the default), with one worker at one thread
(`--set train.threads=1`: the fair baseline when other jobs load the machine, where two
threads on a tiny model mostly wait for each other) and with two workers (threads =
cores // 2 each). Two figures: trial throughput (trials over the span from the first trial's
start to the last one's end) and the whole command's wall time (including the workers'
start-up). The ratio is taken against the faster `--jobs 1` variant. The load average is
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
from _machine import auto_summary, print_header


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


VARIANTS = {  # label: (jobs, extra --set overrides)
    "--jobs 1": (1, []),
    "--jobs 1, train.threads=1": (1, ["train.threads=1"]),
    "--jobs 2": (2, []),
}


def run(config: Path, out: Path, jobs: int, overrides: list[str], trials: int) -> tuple[float, float]:
    """(command wall seconds, trial span seconds) of one `modelforge tune` run."""
    import optuna

    command = [sys.executable, "-m", "modelforge", "tune", str(config), "--out", str(out)]
    command += ["--jobs", str(jobs), "--trials", str(trials), "--study", "bench"]
    command += [arg for override in overrides for arg in ("--set", override)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name="bench", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == trials and all(t.state.name == "COMPLETE" for t in study.trials)
    first = min(t.datetime_start for t in study.trials)
    last = max(t.datetime_complete for t in study.trials)
    return wall, (last - first).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="run the variants in turn this many times; best of each")
    args = parser.parse_args()

    print_header()
    print(f"{len(os.sched_getaffinity(0))} cores available to this process")
    with tempfile.TemporaryDirectory(prefix="tune-parallel-") as temp:
        folder = Path(temp)
        config = write_config(folder, args.epochs)
        best: dict[str, tuple[float, float]] = {}
        for repeat in range(args.repeats):
            for index, (label, (jobs, overrides)) in enumerate(VARIANTS.items()):
                out = folder / f"variant{index}-{repeat}"
                wall, span = run(config, out, jobs, overrides, args.trials)
                print(
                    f"{label}: {args.trials} trials, span {span:.1f} s ({args.trials / span:.2f} trials/s), "
                    f"command {wall:.1f} s",
                    flush=True,
                )
                trials = [trial for trial in (out / "trials").glob("*") if trial.is_dir()]
                print(f"{label}: {auto_summary(trials)}", flush=True)
                if label not in best or span < best[label][1]:
                    best[label] = (wall, span)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    one = min((label for label in best if label.startswith("--jobs 1")), key=lambda label: best[label][1])
    print(f"faster --jobs 1 variant: {one}")
    print(f"trial throughput --jobs 2 / --jobs 1: {best[one][1] / best['--jobs 2'][1]:.2f}x (floor 1.6x)")
    print(f"command wall time --jobs 1 / --jobs 2: {best[one][0] / best['--jobs 2'][0]:.2f}x")


if __name__ == "__main__":
    main()
