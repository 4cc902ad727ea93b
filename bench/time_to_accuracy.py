"""Time to accuracy with `modelforge init`'s defaults: init, then train, as a stranger would (no edits).

For each data set: rows, epochs run, wall seconds of `modelforge train`, the best validation metric
(accuracy for classification, r2 for regression), the test metric, and the wall seconds from the start of
`modelforge train` until the first epoch within 0.3 points of the run's own best and of the set's best
over the budgets run (read from metrics.jsonl as its rows appear, so start-up, data loading and
validation are counted).

Data, all local (no downloads): the bundled examples/data sets, sklearn's digits as a PNG folder, a
32,000-row synthetic table (sklearn make_classification), and 2,000- and 8,000-image 28×28 subsets of
Fashion-MNIST as PNG folders, read from Debian's dataset-fashion-mnist package
(/usr/share/datasets/fashion-mnist; `apt-get install dataset-fashion-mnist`), skipped when it is absent.

    .venv/bin/python bench/time_to_accuracy.py                    # every set, init's budget
    .venv/bin/python bench/time_to_accuracy.py --only fashion-8k --old   # and the old fixed budget beside it
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "data"
FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
WITHIN = 0.003  # "within 0.3 points" of the best, on a 0–1 metric

# the budget init wrote before it sized it to the data (for --old)
OLD_TRAIN = {
    "batch_size": 64,
    "lr": 1.0e-3,
    "optimizer": "adamw",
    "weight_decay": 1.0e-4,
    "schedule": "cosine",
    "early_stopping": {"metric": "valid_loss", "patience": 8},
}


def png_folder(images: np.ndarray, labels: np.ndarray, names: list[str], folder: Path) -> Path:
    from PIL import Image

    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(pixels).save(folder / names[label] / f"{i}.png")
    return folder


def fashion(rows: int, folder: Path) -> Path | None:
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        return None
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION / "train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(int)
    pick = np.random.default_rng(0).permutation(len(labels))[:rows]
    return png_folder(images[pick], labels[pick], CLASSES, folder / f"fashion-{rows}")


def digits(folder: Path) -> Path:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images * (255 / 16)).round().astype(np.uint8)
    return png_folder(images, data.target, [str(d) for d in range(10)], folder / "digits")


def synthetic_table(rows: int, folder: Path) -> Path:
    from sklearn.datasets import make_classification

    x, y = make_classification(rows, 20, n_informative=10, n_classes=2, flip_y=0.1, class_sep=0.8, random_state=0)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(20)]).assign(y=np.where(y, "yes", "no"))
    frame.to_csv(folder / "synthetic.csv", index=False)
    return folder / "synthetic.csv"


# name: (builder of the data path, init's extra arguments)
SETS: dict[str, tuple[Any, list[str]]] = {
    "wine": (lambda folder: EXAMPLES / "wine.csv", ["--target", "cultivar"]),
    "diabetes": (lambda folder: EXAMPLES / "diabetes.csv", ["--target", "progression"]),
    "breast_cancer": (lambda folder: EXAMPLES / "breast_cancer.csv", ["--target", "diagnosis"]),
    "table-32k": (lambda folder: synthetic_table(32_000, folder), ["--target", "y"]),
    "digits-npz": (lambda folder: EXAMPLES / "digits.npz", ["--target", "y"]),
    "digits-png": (digits, []),
    "fashion-2k": (lambda folder: fashion(2_000, folder), []),
    "fashion-8k": (lambda folder: fashion(8_000, folder), []),
}


def modelforge(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modelforge", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def headline(row: dict[str, Any]) -> tuple[str, float | None]:
    for key in ("valid_accuracy", "valid_r2"):
        if key in row:
            return key, row[key]
    return "valid_loss", None


def train(config: Path, run: Path) -> dict[str, Any]:
    """`modelforge train`, watching metrics.jsonl: each epoch row with the wall seconds it appeared at."""
    started = time.perf_counter()
    process = modelforge("train", str(config), "--out", str(run), "--no-progress")
    metrics, seen = run / "metrics.jsonl", 0
    rows: list[dict[str, Any]] = []
    while process.poll() is None or seen < (len(metrics.read_text().splitlines()) if metrics.exists() else 0):
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        for line in lines[seen:]:
            if line.endswith("}"):
                rows.append(json.loads(line) | {"wall": time.perf_counter() - started})
                seen += 1
        time.sleep(0.1)
    output = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        raise SystemExit(f"train {config} failed:\n{output}")
    wall = time.perf_counter() - started
    metric, _ = headline(rows[0])
    values = [row[metric] for row in rows]
    best = max(values)
    reached = next(row for row, value in zip(rows, values, strict=True) if value >= best - WITHIN)
    evaluation = json.loads((run / "eval.json").read_text())
    test = evaluation.get("test", evaluation)
    test_value = test.get(metric.removeprefix("valid_")) if isinstance(test, dict) else None
    return {
        "metric": metric.removeprefix("valid_"),
        "epochs": len(rows),
        "wall_s": wall,
        "best": best,
        "best_epoch": rows[values.index(best)]["epoch"],
        "reach_s": reached["wall"],
        "reach_epoch": reached["epoch"],
        "test": test_value,
        "curve": [(row["wall"], value) for row, value in zip(rows, values, strict=True)],
    }


def run_set(name: str, folder: Path, old: bool) -> list[dict[str, Any]]:
    build, extra = SETS[name]
    data = build(folder)
    if data is None:
        print(f"{name}: skipped ({FASHION} not found; apt-get install dataset-fashion-mnist)", flush=True)
        return []
    config = folder / f"{name}.yaml"
    made = subprocess.run(
        [sys.executable, "-m", "modelforge", "init", str(data), *extra, "--out", str(config)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        raise SystemExit(f"init {data} failed:\n{made.stderr}")
    written = yaml.safe_load(config.read_text())
    rows = pd.read_csv(data) if data.suffix == ".csv" else None
    count = len(rows) if rows is not None else sum(1 for p in data.rglob("*.png")) or len(np.load(data)["y"])
    budgets = [("init", config)]
    if old:
        media = written["model"]["type"] in ("cnn", "audio_cnn")
        old_config = written | {"train": {"epochs": 30 if media else 50} | OLD_TRAIN}
        (folder / f"{name}-old.yaml").write_text(yaml.safe_dump(old_config, sort_keys=False))
        budgets.append(("old", folder / f"{name}-old.yaml"))
    results = []
    for budget, path in budgets:
        train_cfg = yaml.safe_load(path.read_text())["train"]
        result = train(path, folder / "runs" / f"{name}-{budget}")
        result |= {"set": name, "rows": count, "budget": budget, "plan": plan(train_cfg)}
        results.append(result)
    best = max(r["best"] for r in results)  # the set's best over the budgets run: both reach for the same mark
    for result in results:
        result["reach_set_s"] = next((wall for wall, value in result["curve"] if value >= best - WITHIN), None)
        print(line(result), flush=True)
    return results


def plan(train_cfg: dict[str, Any]) -> str:
    stop = train_cfg.get("early_stopping") or {}
    return (
        f"{train_cfg['epochs']}ep b{train_cfg['batch_size']} {train_cfg.get('schedule', 'constant')} "
        f"p{stop.get('patience', '-')}"
    )


HEADER = (
    f"{'set':<14}{'budget':<7}{'rows':>6}  {'plan':<24}{'epochs':>6}{'wall s':>8}  {'metric':<9}"
    f"{'best':>7}{'@ep':>4}{'±0.3 s':>8}{'@ep':>4}{'set ±0.3 s':>11}{'test':>7}"
)


def line(r: dict[str, Any]) -> str:
    test = f"{r['test']:.4f}" if isinstance(r["test"], float) else "-"
    reach_set = f"{r['reach_set_s']:.1f}" if r["reach_set_s"] is not None else "never"
    return (
        f"{r['set']:<14}{r['budget']:<7}{r['rows']:>6}  {r['plan']:<24}{r['epochs']:>6}{r['wall_s']:>8.1f}  "
        f"{r['metric']:<9}{r['best']:>7.4f}{r['best_epoch']:>4}{r['reach_s']:>8.1f}{r['reach_epoch']:>4}{reach_set:>11}{test:>7}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(SETS), help="these sets (default: all)")
    parser.add_argument("--old", action="store_true", help="also train the old fixed budget (30/50 epochs, batch 64)")
    parser.add_argument("--keep", type=Path, help="build data and runs in this folder (default: a temporary one)")
    args = parser.parse_args()

    from modelforge.hardware import machine_header

    print(machine_header(), flush=True)
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="tta-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for name in args.only or SETS:
            run_set(name, folder, args.old)


if __name__ == "__main__":
    main()
