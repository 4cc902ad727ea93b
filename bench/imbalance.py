"""Decisions under imbalance: ours beside scikit-learn's LogisticRegression and HistGradientBoosting.

    .venv/bin/python bench/imbalance.py            # Default and Caravan (ISLP's tables)
    .venv/bin/python bench/imbalance.py --quick    # Default only, plain and balanced

Each table is split once, seeded: 70 % to fit (of which 20 % is the validation split that tunes the
threshold and the temperature), 30 % to test. Every model, ours and the baselines, fits on the same
rows, tunes its threshold on the same validation rows with `decision: {max_flag_rate: 0.1}`, and is
scored on the test rows it never saw. Our runs also calibrate (`calibrate: temperature`).

Prints the machine, then one row per model: average precision (PR-AUC), the share of positives
caught and the share of rows flagged on the test split at the tuned threshold, ECE before and after
calibration, and seconds to fit. Ours (an MLP, 64-32 hidden, 40 epochs, best validation-loss epoch)
come in variants of `train:` for imbalance: plain, `class_weights: balanced` (also with isotonic
instead of temperature calibration), `loss: focal`, `sampling: oversample`, `sampling: undersample`.

Needs ISLP (`pip install --no-deps ISLP`; the Makefile installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from _machine import auto_line, print_header

from modelforge.config import load_config
from modelforge.decision import expected_calibration_error, tune_threshold
from modelforge.training.recipe import load_splits, train

SEED = 0
FLAG_RATE = 0.1
# name → (train: keys, calibrate:)
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "plain": ({}, "temperature"),
    "class_weights: balanced": ({"class_weights": "balanced"}, "temperature"),
    "class_weights: balanced, calibrate: isotonic": ({"class_weights": "balanced"}, "isotonic"),
    "loss: focal": ({"loss": "focal"}, "temperature"),
    "sampling: oversample": ({"sampling": "oversample"}, "temperature"),
    "sampling: undersample": ({"sampling": "undersample"}, "temperature"),
}


def load_table(name: str) -> tuple[pd.DataFrame, str]:
    """ISLP's table and its target column, the target as Yes/No."""
    from ISLP import load_data

    frame = load_data(name)
    target = {"Default": "default", "Caravan": "Purchase"}[name]
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(str)
    return frame, target


def split_files(frame: pd.DataFrame, target: str, folder: Path) -> tuple[Path, Path]:
    """Seeded, stratified 70/30: the fit file (ours splits its validation rows off it) and the test file."""
    from sklearn.model_selection import train_test_split

    fit, test = train_test_split(frame, test_size=0.3, random_state=SEED, stratify=frame[target])
    fit.to_csv(folder / "fit.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return folder / "fit.csv", folder / "test.csv"


def our_config(fit: Path, test: Path, target: str, variant: tuple[dict[str, Any], str]) -> dict[str, Any]:
    train_keys, calibrate = variant
    return {
        "task": "classification",
        "seed": SEED,
        "data": {"train": str(fit), "test": str(test), "target": target, "split": {"valid": 0.2, "test": 0.0}},
        "model": {"type": "mlp", "hidden": [64, 32]},
        "train": {"epochs": 40, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4, **train_keys},
        "decision": {"max_flag_rate": FLAG_RATE, "positive": "Yes"},
        "calibrate": calibrate,
    }


def ours(
    fit: Path, test: Path, target: str, folder: Path, name: str, variant: tuple[dict[str, Any], str]
) -> dict[str, Any]:
    started = time.perf_counter()
    out = folder / name.replace(": ", "-").replace(", ", "-")
    run = train(load_config(our_config(fit, test, target, variant)), out, False)
    seconds = time.perf_counter() - started
    print(f"modelforge MLP, {name}: {auto_line(out)}", flush=True)
    metrics = run.metrics
    return {
        "model": f"modelforge MLP, {name}",
        "average_precision": metrics["average_precision"],
        "caught": metrics["positive"]["recall"],
        "flagged": metrics["flag_rate"],
        "ece_before": metrics.get("ece_uncalibrated", metrics["ece"]),
        "ece_after": metrics["ece"],
        "seconds": seconds,
    }


def baseline(name: str, estimator: Any, splits: tuple[pd.DataFrame, ...], target: str) -> dict[str, Any]:
    """A scikit-learn model fitted on our train rows, its threshold tuned on our validation rows."""
    from sklearn.metrics import average_precision_score

    train_rows, valid_rows, test_rows = splits
    columns = [c for c in train_rows.columns if c != target]
    encode = lambda rows: pd.get_dummies(rows[columns], drop_first=True, dtype=float)  # noqa: E731
    x_train = encode(train_rows)
    x_valid = encode(valid_rows).reindex(columns=x_train.columns, fill_value=0.0)
    x_test = encode(test_rows).reindex(columns=x_train.columns, fill_value=0.0)
    started = time.perf_counter()
    estimator.fit(x_train, train_rows[target] == "Yes")
    seconds = time.perf_counter() - started
    valid_score, test_score = estimator.predict_proba(x_valid)[:, 1], estimator.predict_proba(x_test)[:, 1]
    threshold, _ = tune_threshold(valid_rows[target] == "Yes", valid_score, {"max_flag_rate": FLAG_RATE})
    positive = (test_rows[target] == "Yes").to_numpy()
    flagged = test_score >= threshold
    return {
        "model": name,
        "average_precision": average_precision_score(positive, test_score),
        "caught": float((flagged & positive).sum() / positive.sum()),
        "flagged": float(flagged.mean()),
        "ece_before": expected_calibration_error(positive, test_score),
        "ece_after": None,
        "seconds": seconds,
    }


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print("| model | average precision | caught at ≤10 % flagged | flagged | ECE before | ECE after | fit s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        after = "–" if row["ece_after"] is None else f"{row['ece_after']:.4f}"
        print(
            f"| {row['model']} | {row['average_precision']:.3f} | {row['caught']:.1%} | {row['flagged']:.1%} "
            f"| {row['ece_before']:.4f} | {after} | {row['seconds']:.1f} |"
        )


def bench_table(name: str, variants: dict[str, tuple[dict[str, Any], str]], folder: Path) -> list[dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, target = load_table(name)
    table_folder = folder / name
    table_folder.mkdir()
    fit, test = split_files(frame, target, table_folder)
    rows = [ours(fit, test, target, table_folder, variant, train_keys) for variant, train_keys in variants.items()]
    train_rows, valid_rows, test_rows = load_splits(load_config(our_config(fit, test, target, VARIANTS["plain"])))
    splits = (train_rows, valid_rows, test_rows)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    rows.append(baseline("scikit-learn LogisticRegression", logistic, splits, target))
    boosting = HistGradientBoostingClassifier(random_state=SEED)
    rows.append(baseline("scikit-learn HistGradientBoostingClassifier", boosting, splits, target))
    positives = (frame[target] == "Yes").mean()
    print_table(f"{name}: {len(frame)} rows, {positives:.1%} positive; test split {len(test_rows)} rows", rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Default only, two variants")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    try:
        import ISLP  # noqa: F401
    except ImportError:
        raise SystemExit("bench/imbalance.py needs ISLP: pip install --no-deps ISLP==0.6.0") from None
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    print_header()  # after set_num_threads: its thread count is the one the runs and baselines use
    np.random.seed(SEED)
    tables = ["Default"] if args.quick else ["Default", "Caravan"]
    variants = {k: VARIANTS[k] for k in ("plain", "class_weights: balanced")} if args.quick else VARIANTS
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in tables:
            results[name] = bench_table(name, variants, Path(folder))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
