"""Insight figures: Integrated Gradients completeness, the decisive column's rank, report build time.

    .venv/bin/python bench/insight.py

Trains two small runs in a temporary folder (scikit-learn's breast cancer table; a synthetic
table whose label only `decisive` decides), then prints:
- IG completeness: max and median |sum of attributions − (score − baseline score)| relative
  to |score − baseline score| over 100 rows, for 16, 64 and 256 steps;
- how often `decisive` is the top feature of a row, and its global rank, per method;
- wall time of `build_report` (classification, with one slice column) and of explaining 100 rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _machine import auto_line, print_header

from modelforge.config import load_config
from modelforge.evaluate.explain import explain_frame, global_importance
from modelforge.evaluate.report import build_report
from modelforge.training.recipe import train


def breast_cancer(folder: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["site"] = np.random.default_rng(0).choice(["north", "south", "east"], len(frame))
    frame.to_csv(folder / "cancer.csv", index=False)
    return folder / "cancer.csv"


def one_column(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"noise{i}": rng.normal(size=2000) for i in range(1, 9)})
    frame["decisive"] = rng.normal(size=2000)
    frame["color"] = rng.choice(["red", "green", "blue"], 2000)
    frame["label"] = np.where(frame["decisive"] > 0, "yes", "no")
    frame.to_csv(folder / "one_column.csv", index=False)
    return folder / "one_column.csv"


def relative_gap(e: object) -> float:
    expected = e.score - e.baseline_score  # type: ignore[attr-defined]
    return abs(e.total - expected) / max(abs(expected), 1e-9)  # type: ignore[attr-defined]


def completeness(run: object, frame: pd.DataFrame) -> None:
    print("IG completeness over 100 rows (relative error of sum vs score − baseline)")
    for steps in (16, 64, 256):
        explanations = explain_frame(run, frame, list(range(100)), steps=steps)
        errors = [
            abs(e.total - (e.score - e.baseline_score)) / max(abs(e.score - e.baseline_score), 1e-9)
            for e in explanations
        ]
        print(f"  steps {steps:>3}: max {max(errors):.2e}  median {float(np.median(errors)):.2e}")


def decisive_rank(run: object, frame: pd.DataFrame) -> None:
    print("synthetic table, 100 rows: share of rows whose top feature is `decisive`; its global rank")
    for method in ("ig", "saliency", "occlusion"):
        explanations = explain_frame(run, frame, list(range(100)), method=method, steps=32)
        share = np.mean([e.top_features(1)[0][0] == "decisive" for e in explanations])
        rank = list(global_importance(explanations)).index("decisive") + 1
        print(f"  {method:<9}: top feature in {share:.0%} of rows, global rank {rank}")


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    torch.set_num_threads(1)
    print_header()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        cancer = train(
            load_config(
                {
                    "data": {"train": str(breast_cancer(folder)), "target": "target", "drop": ["site"]},
                    "model": {"type": "mlp"},
                    "train": {"epochs": 20, "lr": 3e-3, "threads": 1},
                }
            ),
            folder / "cancer",
            show_progress=False,
        )
        print(f"breast cancer mlp: test accuracy {cancer.metrics['accuracy']:.4f}")
        print(f"breast cancer mlp: {auto_line(folder / 'cancer')}")
        frame = pd.read_csv(folder / "cancer.csv")
        completeness(cancer, frame)
        started = time.perf_counter()
        explain_frame(cancer, frame, list(range(100)), steps=64)
        print(f"explain 100 rows (IG, 64 steps): {time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        html = build_report(cancer.path, slice_by=["site"])
        print(
            f"report (classification, --slice-by site): {time.perf_counter() - started:.2f} s, {len(html) / 1e3:.0f} kB"
        )

        synthetic = train(
            load_config(
                {
                    "data": {"train": str(one_column(folder)), "target": "label"},
                    "model": {"type": "mlp", "hidden": [32]},
                    "train": {"epochs": 15, "lr": 3e-3, "threads": 1},
                }
            ),
            folder / "synthetic",
            show_progress=False,
        )
        print(f"synthetic mlp: test accuracy {synthetic.metrics['accuracy']:.4f}")
        print(f"synthetic mlp: {auto_line(folder / 'synthetic')}")
        decisive_rank(synthetic, pd.read_csv(folder / "one_column.csv"))


if __name__ == "__main__":
    main()
