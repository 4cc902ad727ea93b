"""Compression floors of issue 7, measured side by side on this CPU (1 thread while timing).

    .venv/bin/python bench/compression.py [--out /tmp/compression-bench] [--epochs 12]

1. An MLP (hidden 2048-2048-1024, 6.4 M params, Linear layers dominate) on the 8×8 digits
   flattened to 64 numeric columns: int8-dynamic, 50 % magnitude pruning + 2 fine-tune epochs,
   50 % structured (neuron) pruning + 2 fine-tune epochs, ONNX (parity + onnxruntime latency).
2. A CNN (channels 32-64-128) on the digits images: 50 % structured channel pruning + fine-tune,
   static int8 with calibration, and a distilled student CNN (channels 12-24-48, about 1/7 of the
   teacher's parameters).
3. A text model: a bidirectional LSTM (embedding 128, hidden 256) on SST-2 sentiment (10,000
   training phrases, the 1,821 labelled test sentences), int8-dynamic (LSTM, Linear and the
   embedding table).
Prints one table per model with ratios against the float baseline, then the floors checklist.
Runs already in --out are reused, so `--sections` can split the work into shorter timed runs;
the floors need all three sections (a run with fewer prints only its tables).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _machine import auto_line, print_header

from modelforge.compress.benchmark import BenchmarkRow, benchmark_run, markdown_table
from modelforge.compress.distill import distill
from modelforge.compress.recipe import CompressOptions, compress_run
from modelforge.config import load_config
from modelforge.export.recipe import export_run
from modelforge.training.recipe import train as train_run

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "data" / "digits.npz"
SST2 = ROOT.parent / "shared" / "datasets" / "sst2"
SST2_TRAIN_ROWS = 10_000


def flat_digits(folder: Path) -> Path:
    data = np.load(DIGITS)
    path = folder / "digits_flat.npz"
    np.savez(path, x=data["x"].reshape(len(data["x"]), -1).astype(np.float32), y=data["y"])
    return path


def done(out: Path) -> bool:
    """Runs already in --out are reused, so a re-run only measures (and redoes what failed)."""
    return (out / "model.json").exists()


def train(config: dict, out: Path) -> Path:
    if done(out):
        print(f"reusing {out.name}: {auto_line(out)}", flush=True)
        return out
    started = time.perf_counter()
    run = train_run(load_config(config), out, show_progress=False)
    print(f"trained {out.name} in {time.perf_counter() - started:.0f} s: {run.metrics['accuracy']:.4f}", flush=True)
    print(f"{out.name}: {auto_line(out)}", flush=True)
    return out


def mlp_section(folder: Path, epochs: int) -> tuple[list[BenchmarkRow], dict[str, float]]:
    config = {
        "task": "classification",
        "data": {"train": str(flat_digits(folder)), "target": "y", "split": {"valid": 0.1, "test": 0.2}},
        "model": {"type": "mlp", "hidden": [2048, 2048, 1024], "dropout": 0.1},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 1e-3, "schedule": "cosine", "weight_decay": 1e-4},
    }
    base = train(config, folder / "mlp")
    variants = {
        "mlp-int8": CompressOptions(quantize="int8-dynamic"),
        "mlp-prune50": CompressOptions(prune=0.5, finetune_epochs=2),
        "mlp-struct50": CompressOptions(prune=0.5, prune_method="structured", finetune_epochs=2),
    }
    for name, options in variants.items():
        if not done(folder / name):
            compress_run(base, folder / name, options)
    parity = export_run(base, "onnx").parity
    rows = [benchmark_run(base)] + [benchmark_run(folder / n) for n in variants] + [benchmark_run(base, "onnx")]
    return rows, {"onnx_max_abs_diff": parity.max_abs_diff if parity else float("nan")}


def cnn_section(folder: Path, epochs: int) -> list[BenchmarkRow]:
    config = {
        "task": "classification",
        "data": {"train": str(DIGITS), "target": "y", "split": {"valid": 0.1, "test": 0.2}},
        "features": [{"name": "x", "type": "image"}],
        "model": {"type": "cnn", "channels": [32, 64, 128]},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 3e-3, "schedule": "onecycle", "weight_decay": 1e-4},
    }
    base = train(config, folder / "cnn")
    variants = {
        "cnn-struct50": CompressOptions(prune=0.5, prune_method="structured", finetune_epochs=5, finetune_lr=1e-3),
        "cnn-int8-static": CompressOptions(quantize="int8-static"),
    }
    for name, options in variants.items():
        if not done(folder / name):
            compress_run(base, folder / name, options)
    student = folder / "student.yaml"
    student.write_text(
        f"model: {{type: cnn, channels: [12, 24, 48]}}\n"
        f"train: {{epochs: {epochs * 2}, batch_size: 64, lr: 3.0e-3, schedule: onecycle, weight_decay: 1.0e-4}}\n"
    )
    if not done(folder / "cnn-student"):
        distill(base, student, folder / "cnn-student", temperature=4.0, alpha=0.7)
    print(f"cnn-student: {auto_line(folder / 'cnn-student')}", flush=True)
    names = ["cnn", "cnn-struct50", "cnn-int8-static", "cnn-student"]
    return [benchmark_run(folder / n) for n in names]


def sst2_subset(folder: Path) -> Path:
    """A fixed random 10,000 of the 67,349 training phrases (training all of them takes too long here)."""
    import pandas as pd

    path = folder / "sst2_train_10k.csv"
    if not path.exists():
        frame = pd.read_csv(SST2 / "train.csv", keep_default_na=False)
        frame.sample(SST2_TRAIN_ROWS, random_state=0).to_csv(path, index=False)
    return path


def text_section(folder: Path, epochs: int) -> list[BenchmarkRow]:
    config = {
        "task": "classification",
        "data": {
            "train": str(sst2_subset(folder)),
            "valid": str(SST2 / "validation.csv"),
            "test": str(SST2 / "test.csv"),
            "target": "label",
        },
        "features": [{"name": "text", "type": "text", "tokenizer": "word", "max_length": 48, "vocab_size": 10000}],
        "model": {"type": "lstm", "embedding_dim": 128, "hidden": 256, "dropout": 0.4},
        "train": {"epochs": epochs, "batch_size": 128, "lr": 3e-3, "schedule": "onecycle", "weight_decay": 0.01},
    }
    base = train(config, folder / "lstm")
    if not done(folder / "lstm-int8"):
        compress_run(base, folder / "lstm-int8", CompressOptions(quantize="int8-dynamic"))
    return [benchmark_run(base), benchmark_run(folder / "lstm-int8")]


def int8_floors(label: str, base: BenchmarkRow, q: BenchmarkRow) -> list[str]:
    size, speed, drop = (
        base.file_bytes / q.file_bytes,
        base.latency_p50_ms / q.latency_p50_ms,
        100 * (base.value - q.value),
    )
    return [
        check(f"int8-dynamic {label} ≥ 3.5× smaller", size >= 3.5, f"{size:.2f}×"),
        check(f"int8-dynamic {label} ≥ 1.3× faster batch-1", speed >= 1.3, f"{speed:.2f}× (p50)"),
        check(f"int8-dynamic {label} ≤ 1 point drop", drop <= 1.0, f"Δ {-drop:+.2f} points"),
    ]


def check(label: str, ok: bool, detail: str) -> str:
    return f"- [{'x' if ok else ' '}] {label}: {detail}"


def floors(
    mlp: list[BenchmarkRow], cnn: list[BenchmarkRow], text: list[BenchmarkRow], extra: dict[str, float]
) -> list[str]:
    by = {r.variant + ("/onnx" if r.engine == "onnx" else ""): r for r in mlp + cnn + text}
    base = by["mlp"]
    p50, s50 = by["mlp-prune50"], by["mlp-struct50"]
    cb, cs, st = by["cnn"], by["cnn-struct50"], by["cnn-student"]
    onnx = by["mlp/onnx"]
    return [
        *int8_floors("(mlp)", base, by["mlp-int8"]),
        *int8_floors("(lstm text)", by["lstm"], by["lstm-int8"]),
        check(
            "50 % magnitude + fine-tune ≤ 1 point drop",
            100 * (base.value - p50.value) <= 1.0,
            f"Δ {100 * (p50.value - base.value):+.2f} points, non-zero {p50.nonzero_share:.1%}",
        ),
        check(
            "structured 50 % speed-up (mlp)",
            s50.latency_p50_ms < base.latency_p50_ms,
            f"batch-1 {base.latency_p50_ms / s50.latency_p50_ms:.2f}×, batch-64 "
            f"{s50.throughput_rows_per_s / base.throughput_rows_per_s:.2f}×",
        ),
        check(
            "structured 50 % speed-up (cnn)",
            cs.latency_p50_ms < cb.latency_p50_ms,
            f"batch-1 {cb.latency_p50_ms / cs.latency_p50_ms:.2f}×, batch-64 "
            f"{cs.throughput_rows_per_s / cb.throughput_rows_per_s:.2f}×, Δ {100 * (cs.value - cb.value):+.2f} points",
        ),
        check(
            "student ≤ 1/4 params within 1.5 points",
            st.parameters * 4 <= cb.parameters and 100 * (cb.value - st.value) <= 1.5,
            f"{st.parameters / cb.parameters:.1%} of params, Δ {100 * (st.value - cb.value):+.2f} points",
        ),
        check(
            "ONNX parity ≤ 1e-4", extra["onnx_max_abs_diff"] <= 1e-4, f"max abs diff {extra['onnx_max_abs_diff']:.2g}"
        ),
        check(
            "onnxruntime batch-1 vs eager",
            True,
            f"{onnx.latency_p50_ms:.3f} ms vs {base.latency_p50_ms:.3f} ms "
            f"({base.latency_p50_ms / onnx.latency_p50_ms:.2f}×)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temp dir)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of the mlp and cnn baselines")
    parser.add_argument("--text-epochs", type=int, default=2, help="training epochs of the lstm baseline")
    parser.add_argument("--sections", default="cnn,mlp,text", help="comma-separated subset of cnn,mlp,text")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print_header()
    folder = args.out or Path(tempfile.mkdtemp(prefix="compression-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    sections = set(args.sections.split(","))
    report = ""
    cnn = cnn_section(folder, args.epochs) if "cnn" in sections else []
    mlp, extra = mlp_section(folder, args.epochs) if "mlp" in sections else ([], {})
    text = text_section(folder, args.text_epochs) if "text" in sections else []
    if mlp:
        report += "### MLP 2048-2048-1024 on digits (64 numeric columns)\n\n" + markdown_table(mlp)
    if cnn:
        report += "\n### CNN 32-64-128 on digits (8×8 images)\n\n" + markdown_table(cnn)
    if text:
        report += "\n### BiLSTM (embedding 128, hidden 256) on SST-2 text\n\n" + markdown_table(text)
    if mlp and cnn and text:
        report += "\n### Floors\n\n" + "\n".join(floors(mlp, cnn, text, extra)) + "\n"
    print(report)
    (folder / f"compression-{'-'.join(sorted(sections))}.md").write_text(report)
    print(f"runs and tables in {folder}")


if __name__ == "__main__":
    main()
