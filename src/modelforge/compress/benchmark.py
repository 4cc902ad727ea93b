"""Benchmark variants of a run side by side: size, parameters, sparsity, latency, throughput, accuracy.

    modelforge benchmark runs/digits runs/digits-int8 runs/digits-p50 [--engine onnx]
    modelforge benchmark runs/digits --engine all     # torch, frozen, onnx and onnx-int8, one row each

Latency is one row at a time over real test rows (median and 95th percentile, after warm-up);
throughput is batches of 64 rows. Each is timed in 3 rounds and the round with the lowest
median is kept, since on a shared machine other jobs can only add time. Both time the model's
forward on already preprocessed tensors, with `threads` CPU threads (1 by default, so numbers
are comparable on a busy box).

Runs whose requests are not rows of a table say what one request is through their task's
`benchmark` entry (a `Workload`: a GPT's decode step, a user scored against all items, an
image sampled; see modelforge.tasks), timed the same way on the run's module (torch) or on its
exported graph (onnx, the run from the task's `onnx_run`). Their metric is the run's own key
metric from eval.json on the torch row, and "—" on the onnx row (`export` checked its parity).
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelforge.compress.variant import headline, inputs_only, load_source_run, run_splits, score_model, score_outputs
from modelforge.errors import ModelforgeError, RunError
from modelforge.tasks import Task, load_entry, task_of_run

# torch: the eager module; frozen: the traced, frozen graph serve uses (the families it freezes);
# onnx: onnxruntime on the exported model.onnx; onnx-int8: that graph after onnxruntime's dynamic
# int8 quantization (weights int8, activations quantized per call), its accuracy beside the others
ENGINES = ("torch", "frozen", "onnx", "onnx-int8")
ROUNDS = 3


@dataclass
class BenchmarkRow:
    variant: str
    engine: str
    file_bytes: int
    parameters: int
    nonzero_share: float
    latency_p50_ms: float
    latency_p95_ms: float
    throughput_rows_per_s: float
    metric: str
    value: float
    request: str = ""  # what one request is when it is not a row of a table (a task's Workload)


def weight_nonzero_share(weights_path: Path) -> float:
    """Share of non-zero entries over the weight matrices/kernels in a safetensors file (int8 included)."""
    from safetensors import safe_open

    total = nonzero = 0
    with safe_open(str(weights_path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            tensor = handle.get_tensor(key)
            if tensor.ndim >= 2 and not key.endswith((".scale", ".zero_point")):
                total += tensor.numel()
                nonzero += int((tensor != 0).sum())
    return nonzero / max(total, 1)


def time_calls(call: Callable[[int], Any], count: int, warmup: int = 20) -> np.ndarray:
    for index in range(min(warmup, count)):
        call(index)
    seconds = np.empty(count)
    for index in range(count):
        started = time.perf_counter()
        call(index)
        seconds[index] = time.perf_counter() - started
    return seconds


def quietest_round(call: Callable[[int], Any], count: int, rounds: int = ROUNDS, warmup: int = 20) -> np.ndarray:
    """Timings of the round with the lowest median: on a shared machine other jobs only add time."""
    per_round = max(count // rounds, 1)
    timings = [time_calls(call, per_round, warmup if r == 0 else 0) for r in range(rounds)]
    return min(timings, key=np.median)


def benchmark_run(
    path: str | Path, engine: str = "torch", threads: int = 1, latency_rows: int = 600, throughput_batches: int = 60
) -> BenchmarkRow:
    if engine not in ENGINES:
        raise ModelforgeError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    path = Path(path)
    task = task_of_run(path, "benchmark")
    if task.benchmark is not None:  # requests that are not rows of a table: the task says what one is
        return benchmark_workload(path, task, engine, threads, latency_rows, throughput_batches)
    run = load_source_run(path, "benchmark")
    out_dir = tempfile.TemporaryDirectory(prefix="modelforge-bench-")
    held = run_splits(run).held_out
    inputs = inputs_only(held)
    n_rows = len(held["target"])
    batch64 = {k: v[torch.arange(64) % n_rows] for k, v in inputs.items()}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if engine == "torch":
            forward, file_path = _torch_forward(run.model), path / "model.safetensors"
            metrics = score_model(run.model, run, held)
        elif engine == "frozen":
            forward, file_path = _frozen_forward(run), path / "model.safetensors"
            metrics = score_outputs(torch.cat([forward(inputs).float()]), run, held["target"])
        else:
            from modelforge.export.onnx import ONNX_FILE, load_onnx_predictor, onnx_session, quantize_onnx_int8

            predictor = load_onnx_predictor(path, threads)
            file_path = path / ONNX_FILE
            if engine == "onnx-int8":
                file_path = quantize_onnx_int8(file_path, Path(out_dir.name) / "model.int8.onnx", per_channel=False)
                predictor.session = onnx_session(file_path, threads)
            forward = _onnx_forward(predictor.session)
            raw = predictor.raw_outputs({k: v.numpy() for k, v in inputs.items()})
            metrics = score_outputs(torch.from_numpy(raw), run, held["target"])
        rows = [{k: v[i : i + 1] for k, v in inputs.items()} for i in range(min(latency_rows, n_rows))]
        latency = quietest_round(lambda i: forward(rows[i % len(rows)]), latency_rows)
        batch_seconds = quietest_round(lambda i: forward(batch64), throughput_batches, warmup=3)
    finally:
        torch.set_num_threads(previous_threads)
    file_bytes = file_path.stat().st_size
    out_dir.cleanup()
    metric, value = headline(metrics, run.task)
    return BenchmarkRow(
        variant=path.name,
        engine=engine,
        file_bytes=file_bytes,
        parameters=int(run.model_info.get("parameters") or sum(p.numel() for p in run.model.parameters())),
        nonzero_share=weight_nonzero_share(path / "model.safetensors"),
        latency_p50_ms=float(np.percentile(latency, 50) * 1e3),
        latency_p95_ms=float(np.percentile(latency, 95) * 1e3),
        throughput_rows_per_s=float(64 / np.median(batch_seconds)),
        metric=metric,
        value=value,
    )


def benchmark_workload(
    path: Path, task: Task, engine: str, threads: int = 1, latency_rows: int = 600, throughput_batches: int = 60
) -> BenchmarkRow:
    """A run timed on its task's `Workload` (one request, a batch of them) with the run's module
    (torch) or its exported graph standing in for it (onnx); other engines are refused, saying why."""
    if not (path / "model.safetensors").exists():
        raise RunError(f"{path}: run has no weights (model.safetensors missing); train it first")
    info_path = path / "model.json"
    model_type = json.loads(info_path.read_text()).get("type", "?") if info_path.exists() else "?"
    if engine == "frozen":
        from modelforge.export.frozen import TRACEABLE_TYPES

        raise ModelforgeError(
            f"--engine frozen: {path.name} is a {model_type} run, which is not frozen (serve freezes "
            f"{', '.join(TRACEABLE_TYPES)} only); a {task.name} run runs eagerly (torch) or as its ONNX graph"
        )
    if engine == "onnx-int8":
        raise ModelforgeError(
            "--engine onnx-int8: benchmarked on supervised runs, beside the held-out accuracy int8 costs; "
            f"a {task.name} run takes torch and onnx"
        )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if engine == "torch":
            run, file_path = task.load_run(path), path / "model.safetensors"
        else:
            from modelforge.export.onnx import ONNX_FILE

            if task.onnx_run is None:
                raise ModelforgeError(f"--engine onnx: task {task.name} runs have no exported graph to run")
            run, file_path = load_entry(task.onnx_run)(path, threads), path / ONNX_FILE
        workload = load_entry(task.benchmark)(run)
        latency = quietest_round(workload.one, latency_rows)
        batch_seconds = quietest_round(workload.batch, throughput_batches, warmup=3)
    finally:
        torch.set_num_threads(previous_threads)
    metric, value = own_metric(run, task)
    return BenchmarkRow(
        variant=path.name,
        engine=engine,
        file_bytes=file_path.stat().st_size,
        parameters=int(run.model_info.get("parameters") or 0),
        nonzero_share=weight_nonzero_share(path / "model.safetensors"),
        latency_p50_ms=float(np.percentile(latency, 50) * 1e3),
        latency_p95_ms=float(np.percentile(latency, 95) * 1e3),
        throughput_rows_per_s=float(workload.batch_rows / np.median(batch_seconds)),
        metric=metric,
        value=value if engine == "torch" else math.nan,  # eval.json scored the module, not the graph
        request=workload.row,
    )


def own_metric(run: Any, task: Task) -> tuple[str, float]:
    """The run's key metric from eval.json (the first of the task's key metrics it has; a key ending
    in "@" matches ndcg@10 and the like); ("—", nan) when it has none."""
    for key in task.key_metrics:
        for name, value in run.metrics.items():
            if (name == key or (key.endswith("@") and name.startswith(key))) and isinstance(value, int | float):
                return str(name), float(value)
    return "—", math.nan


def _torch_forward(model: torch.nn.Module) -> Callable[[dict[str, torch.Tensor]], Any]:
    model.eval()

    def forward(batch: dict[str, torch.Tensor]) -> Any:
        with torch.inference_mode():
            return model(batch)

    return forward


def _frozen_forward(run: Any) -> Callable[[dict[str, torch.Tensor]], Any]:
    """The frozen graph serve would use, or ModelforgeError saying why the run is not frozen."""
    from modelforge.export.frozen import freeze_for_inference
    from modelforge.export.parity import ExportError

    try:
        frozen = freeze_for_inference(run.model, run.model_info, run.preprocessor.input_spec(), "fp32")
    except ExportError as exc:
        raise ModelforgeError(f"--engine frozen: {run.path.name} is not frozen ({exc})") from None

    def forward(batch: dict[str, torch.Tensor]) -> Any:
        with torch.inference_mode():
            return frozen(batch)

    return forward


def _onnx_forward(session: Any) -> Callable[[dict[str, torch.Tensor]], Any]:
    names = [i.name for i in session.get_inputs()]
    return lambda batch: session.run(None, {n: batch[n].numpy() for n in names})


# ----------------------------------------------------------------------------- tables
def markdown_table(rows: list[BenchmarkRow]) -> str:
    """One line per variant, with ratios against the first row (the baseline)."""
    base = rows[0]
    lines = [
        "| variant | engine | file KB | smaller | params | non-zero | p50 ms | p95 ms | faster (p50) "
        f"| rows/s @64 | {base.metric} | Δ {base.metric} (points) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        delta = (row.value - base.value) * (100 if row.metric == "accuracy" else 1)
        value = "—" if math.isnan(row.value) else f"{row.value:.4f}"
        change = "—" if math.isnan(delta) or row.metric != base.metric else f"{delta:+.2f}"
        lines.append(
            f"| {row.variant} | {row.engine} | {row.file_bytes / 1024:.1f} | {base.file_bytes / row.file_bytes:.2f}× "
            f"| {row.parameters:,} | {row.nonzero_share:.1%} | {row.latency_p50_ms:.3f} | {row.latency_p95_ms:.3f} "
            f"| {base.latency_p50_ms / row.latency_p50_ms:.2f}× | {row.throughput_rows_per_s:,.0f} "
            f"| {value} | {change} |"
        )
    notes = list(dict.fromkeys(f"{row.variant}: one request is {row.request}" for row in rows if row.request))
    if notes:  # runs whose requests are not rows of a table: what a row of the table timed
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[BenchmarkRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(BenchmarkRow)])
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buffer.getvalue()


def write_tables(rows: list[BenchmarkRow], out_dir: Path, stem: str = "benchmark") -> tuple[Path, Path]:
    from modelforge.files import atomic_write_text

    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    atomic_write_text(csv_path, csv_text(rows))
    atomic_write_text(md_path, markdown_table(rows))
    return csv_path, md_path
