"""CLI verbs `compress`, `distill` and `benchmark` (typer and stdlib only at import time)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def compress(
    run: Annotated[Path, typer.Argument(help="trained run directory")],
    out: Annotated[Path, typer.Option(help="new run directory for the compressed model")],
    prune: Annotated[float | None, typer.Option(help="share of weights (or neurons/channels) to remove, 0–1")] = None,
    prune_method: Annotated[str, typer.Option(help="magnitude (unstructured) | structured (neurons/channels)")] = (
        "magnitude"
    ),
    prune_scope: Annotated[str, typer.Option(help="magnitude pruning: global | layer")] = "global",
    finetune_epochs: Annotated[int, typer.Option(help="fine-tune epochs after pruning")] = 0,
    finetune_lr: Annotated[float | None, typer.Option(help="fine-tune learning rate (default: train.lr / 10)")] = None,
    quantize: Annotated[str | None, typer.Option(help="int8-dynamic | int8-static")] = None,
    calibration: Annotated[Path | None, typer.Option(help="int8-static: rows to calibrate on (default: train)")] = None,
    report: Annotated[bool, typer.Option(help="benchmark the original and compressed runs; save CSV + Markdown")] = (
        False
    ),
) -> None:
    """Prune and/or quantize a run into a new run directory that evaluate/predict/serve accept."""
    from modelforge.compress.recipe import CompressOptions
    from modelforge.tasks import load_entry, task_of_run

    options = CompressOptions(prune, prune_method, prune_scope, finetune_epochs, finetune_lr, quantize, calibration)
    task = task_of_run(run, "compress")
    options.check_for_task(task)  # what the task's compressor takes, before it loads anything
    written = load_entry(task.compress)(run, out, options)  # the task's own compressor
    typer.echo(f"wrote {written}")
    if report:
        _benchmark([run, written], "torch", 1, written)


def distill(
    teacher: Annotated[Path, typer.Argument(help="teacher run directory")],
    student_config: Annotated[Path, typer.Argument(help="student YAML (model + train; data defaults to teacher's)")],
    out: Annotated[Path, typer.Option(help="run directory for the student")],
    temperature: Annotated[float, typer.Option(help="softmax temperature of the soft targets")] = 4.0,
    alpha: Annotated[float, typer.Option(help="weight of the soft-target loss (1 − alpha on the labels)")] = 0.7,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a student config key")] = None,
) -> None:
    """Train a small student on the teacher's soft targets plus the hard labels."""
    import json

    from modelforge.compress.distill import distill as run_distill

    written = run_distill(teacher, student_config, out, temperature, alpha, set_ or [])
    student, teacher_info = (json.loads((p / "model.json").read_text()) for p in (written, teacher))
    metrics = json.loads((written / "eval.json").read_text())
    key = "accuracy" if "accuracy" in metrics else "rmse"
    share = student["parameters"] / teacher_info["parameters"]
    score = f"{metrics['split']} {key} {metrics[key]:.4f}"
    typer.echo(f"student {student['parameters']:,} params ({share:.1%} of teacher), {score}")
    typer.echo(f"run: {written}")


def benchmark(
    runs: Annotated[list[Path], typer.Argument(help="run directories; the first is the baseline for ratios")],
    engine: Annotated[
        str,
        typer.Option(help="torch | frozen | onnx | onnx-int8 | all (onnx: after `modelforge export RUN`)"),
    ] = "torch",
    threads: Annotated[int, typer.Option(help="CPU threads while timing")] = 1,
    out: Annotated[
        Path | None, typer.Option(help="folder for benchmark.csv/.md, not a run (default: benchmarks/benchmark-TIME)")
    ] = None,
) -> None:
    """Size, parameters, non-zero share, batch-1 latency p50/p95, batch-64 throughput, test metric.

    A row of a language model is one token decoded after a short prompt (a batch: 64 prompts'
    next-token logits); of a recommender, one user scored against all items; of a generator, one
    image sampled. Those runs take --engine torch and onnx."""
    import time

    from modelforge.errors import ModelforgeError

    if out is None:
        out = Path("benchmarks") / time.strftime("benchmark-%Y%m%d-%H%M%S")
    elif (out / "config.yaml").exists():  # a run's files are its own: its manifest would no longer match
        raise ModelforgeError(f"--out {out}: is a run directory; write the benchmark tables to a folder of their own")
    _benchmark(runs, engine, threads, out)


def _benchmark(runs: list[Path], engine: str, threads: int, out: Path) -> None:
    from modelforge.compress.benchmark import ENGINES, benchmark_run, markdown_table, write_tables
    from modelforge.errors import ModelforgeError

    if engine != "all":
        rows = [benchmark_run(path, engine, threads) for path in runs]
    else:  # every engine a run can take; the others are named with the reason, not silently dropped
        rows = []
        for path in runs:
            for each in ENGINES:
                try:
                    rows.append(benchmark_run(path, each, threads))
                except ModelforgeError as exc:
                    typer.echo(f"{path.name}: no {each} row: {exc}", err=True)
        if not rows:
            raise ModelforgeError("benchmark --engine all: no engine ran (the reasons are above)")
    typer.echo(markdown_table(rows), nl=False)
    csv_path, md_path = write_tables(rows, out)
    typer.echo(f"wrote {csv_path} and {md_path}", err=True)


def register(app: typer.Typer) -> None:
    app.command(name="compress")(compress)
    app.command(name="distill")(distill)
    app.command(name="benchmark")(benchmark)
