"""Serving benchmark: a real `modelforge serve` process answering a keep-alive load generator.

    .venv/bin/python bench/serve.py                   # trains the quickstart digits CNN and a GPT first
    .venv/bin/python bench/serve.py --run runs/digits --gpt-run runs/gpt --seconds 3

Printed, all from the same run:

1. requests/s (one record per request) at concurrency 1, 8, 32, 64 with dynamic batching on
   (`--max-batch-size 64 --max-wait-ms 5`) and off (`--max-batch-size 1`), the ratio, and the
   mean rows per forward pass read from the server's /metrics; both servers up, taking turns in
   rounds, the median round per cell. Floor: ≥ 3× at concurrency 32;
2. latency p50/p99 at concurrency 1, batching on, for `--engine torch` (the frozen graph; lone
   requests on the event loop's thread, the default, and on the model thread), `--engine eager`
   (the module as trained) and `--engine onnx` (on a copy of the run exported by `modelforge
   export`), beside the model's forward time for one row as that engine runs it (frozen graph,
   module or onnxruntime session alone, timed in this process with the server's thread count in
   the same alternating rounds) and each request's own pass in the server (preprocessing,
   forward, answers: its `Server-Timing` header). Floor: p99 ≤ the forward time + 2 ms, checked
   per request (latency less its own pass) and against the median forward;
3. GPT generation over server-sent events: time to first token and tokens/s with 1 and 8
   concurrent streams.

Every answer is checked against the label the run gives in-process, so a fast wrong server fails.
The load generator is a minimal HTTP/1.1 keep-alive client on a bare asyncio protocol (one
connection per concurrent client), so on a small machine the client costs the server as little as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _machine import auto_line, print_header

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
SHAKESPEARE = ROOT.parent / "shared" / "datasets" / "tinyshakespeare" / "input.txt"
MODEL = "digits"
BATCHING = {"off": ("--max-batch-size", "1"), "on": ("--max-batch-size", "64", "--max-wait-ms", "5")}
GPT = "bard"


# ----------------------------------------------------------------------------- runs
def one_thread_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def train_digits(out: Path, epochs: int) -> Path:
    """The quickstart digits CNN (channels 32-64-128), trained for a few epochs by the CLI."""
    command = [sys.executable, "-m", "modelforge", "train", str(QUICKSTART), "--out", str(out)]
    command += ["--set", f"train.epochs={epochs}"]
    subprocess.run(command, check=True, cwd=ROOT, env=one_thread_env(), stdout=subprocess.DEVNULL)
    return out


def train_gpt(out: Path, steps: int) -> Path:
    """A character GPT (4 layers, 4 heads, 128 wide, context 64) on tinyshakespeare."""
    import modelforge

    config = {
        "task": "language-modeling",
        "seed": 0,
        "data": {"train": str(SHAKESPEARE), "tokenizer": "char", "valid_fraction": 0.1},
        "model": {"type": "gpt", "layers": 4, "heads": 4, "width": 128, "context": 64, "dropout": 0.0},
        "train": {"batch_size": 12, "max_steps": steps, "lr": 1e-3, "eval_every": steps, "threads": 1},
    }
    modelforge.train(config, out)
    return out


# ----------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(spec: str, threads: int, *options: str) -> Iterator[int]:
    """`modelforge serve SPEC` in its own process; yields the port once /readyz answers 200."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "modelforge", "serve", spec, "--port", str(port), "--threads", str(threads)]
    process = subprocess.Popen([*command, *options], cwd=ROOT, env=one_thread_env(), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {' '.join(command)}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        if code != 0:
            raise RuntimeError(f"the server exited {code} after SIGTERM (expected 0)")


def metrics(port: int, *names: str) -> list[float]:
    """The values of these samples in one read of /metrics (0 for a sample not there yet)."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    values = []
    for name in names:
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        values.append(float(match.group(1)) if match else 0.0)
    return values


def passes_and_rows(port: int) -> tuple[float, float]:
    """Forward passes so far and the rows they ran, from the batch-size histogram."""
    passes, rows = metrics(
        port,
        f'modelforge_batch_size_rows_count{{model="{MODEL}"}}',
        f'modelforge_batch_size_rows_sum{{model="{MODEL}"}}',
    )
    return passes, rows


# ----------------------------------------------------------------------------- load generator
def predict_request(port: int, record: dict[str, Any]) -> bytes:
    body = json.dumps({"records": [record]}).encode()
    head = (
        f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Load:
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the load generator: a request out, its response back.

    A bare protocol rather than asyncio's streams: at thousands of requests a second on a 2-core
    machine the load generator's own CPU time is what the server has to share its cores with."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[: end + 4])
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        assert length is not None, head
        size = end + 4 + int(length.group(1))
        if len(self.buffer) >= size:
            body = bytes(self.buffer[end + 4 : size])
            del self.buffer[:size]
            self.waiter.set_result((int(head[9:12]), head, body))
            self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    async def send(self, request: bytes) -> tuple[int, bytes, bytes]:
        """Status, head and body of the response to one request."""
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def connect(port: int) -> Connection:
    _, connection = await asyncio.get_running_loop().create_connection(Connection, "127.0.0.1", port)
    return connection


async def client(port: int, requests: list[bytes], labels: list[Any], stop_at: float, out: list[float]) -> int:
    connection = await connect(port)
    done, index = 0, int.from_bytes(os.urandom(2), "little") % len(requests)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            status, _, body = await connection.send(requests[index])
            out.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
            label = json.loads(body)["predictions"][0]["label"]
            if label != labels[index]:
                raise RuntimeError(f"wrong answer for record {index}: {label} instead of {labels[index]}")
            done += 1
            index = (index + 1) % len(requests)
    finally:
        assert connection.transport is not None
        connection.transport.close()
    return done


async def load(port: int, requests: list[bytes], labels: list[Any], concurrency: int, seconds: float) -> Load:
    latencies: list[float] = []
    warm_stop = time.perf_counter() + min(1.0, seconds / 3)
    await asyncio.gather(*(client(port, requests, labels, warm_stop, []) for _ in range(concurrency)))
    started = time.perf_counter()
    stop_at = started + seconds
    counts = await asyncio.gather(*(client(port, requests, labels, stop_at, latencies) for _ in range(concurrency)))
    return Load(sum(counts), time.perf_counter() - started, latencies)


# ----------------------------------------------------------------------------- forward time
@dataclass
class Engine:
    """One `--engine` of the server, and its forward pass run in this process for comparison."""

    name: str
    run_dir: Path
    model: Callable[[], object]  # the model alone on one preprocessed row


def engine(name: str, run_dir: Path, record: dict[str, Any], threads: int) -> Engine:
    """The engine's forward pass as the server runs it: the frozen graph (`torch`), the module (`eager`)
    or the onnxruntime session (`onnx`)."""
    import pandas as pd
    import torch

    from modelforge.serve.services import load_services

    torch.set_num_threads(threads)
    service = load_services([f"{MODEL}={run_dir}"], name, threads)[MODEL]
    [cleaned] = service.schema.validate([record])
    predictor = service.predictor
    inputs = predictor.run.preprocessor.transform_inputs(pd.DataFrame([cleaned]))
    if name == "onnx":

        def model() -> object:
            return predictor.raw_outputs(inputs)
    else:
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
        forward = predictor.forward

        def model() -> object:
            with torch.inference_mode():
                return forward(tensors)

    call_times(model, 50)  # warm up
    return Engine(name, run_dir, model)


def with_onnx_export(run_dir: Path, folder: Path) -> Path | None:
    """A copy of the run with model.onnx written by `modelforge export`, or None without onnxruntime."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    if (run_dir / "model.onnx").exists():
        return run_dir
    copy = folder / "digits-onnx"
    shutil.copytree(run_dir, copy)
    command = [sys.executable, "-m", "modelforge", "export", str(copy), "--format", "onnx"]
    subprocess.run(command, check=True, cwd=ROOT, env=one_thread_env(), stdout=subprocess.DEVNULL)
    return copy


def call_times(call: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


# ----------------------------------------------------------------------------- generation
async def stream_once(http: Any, prompt: str, tokens: int, seed: int) -> tuple[float, int, float]:
    """(time to first token, tokens received, seconds) for one streamed generation."""
    body = {"prompt": prompt, "max_new_tokens": tokens, "temperature": 0.8, "seed": seed, "stream": True}
    started = time.perf_counter()
    first, count = None, 0
    async with http.stream("POST", f"/v1/models/{GPT}/generate", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and '"token"' in line:
                count += 1
                if first is None:
                    first = time.perf_counter() - started
            elif line.startswith("event: error"):
                raise RuntimeError("the server sent an error event")
    assert first is not None and count == tokens, (count, tokens)
    return first, count, time.perf_counter() - started


async def streams(port: int, concurrency: int, tokens: int) -> tuple[float, float, float]:
    """(median time to first token in ms, tokens/s per stream, tokens/s over all streams).

    One client with a connection per stream: building an httpx client per stream costs ~10 ms of
    the event loop each, which would land in the other streams' time to first token."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits) as http:
        await asyncio.gather(*(stream_once(http, "ROMEO:", 8, seed) for seed in range(concurrency)))  # warm-up
        started = time.perf_counter()
        results = await asyncio.gather(*(stream_once(http, "ROMEO:", tokens, seed) for seed in range(concurrency)))
        wall = time.perf_counter() - started
    first = float(np.median([r[0] for r in results])) * 1000
    per_stream = float(np.median([r[1] / r[2] for r in results]))
    return first, per_stream, sum(r[1] for r in results) / wall


# ----------------------------------------------------------------------------- main
def digit_records(run_dir: Path, count: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """Test-set-like digits and the labels the run predicts for them in-process."""
    import pandas as pd

    from modelforge.run import load_run

    with np.load(ROOT / "examples" / "data" / "digits.npz") as arrays:
        pixels = arrays["x"][-count:].astype(float)
    labels = load_run(run_dir).predict(pd.DataFrame({"x": list(pixels)}))["prediction"].tolist()
    return [{"x": p.tolist()} for p in pixels], labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a digits run to serve (default: train the quickstart CNN)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs when training the digits run")
    parser.add_argument("--gpt-run", type=Path, help="a GPT run (default: train one on tinyshakespeare)")
    parser.add_argument("--gpt-steps", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds a round per concurrency level")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per concurrency level (the median is printed)")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--threads", type=int, default=1, help="server torch threads (the box has few cores)")
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=200, help="tokens per generation stream")
    parser.add_argument("--skip-gpt", action="store_true")
    parser.add_argument("--latency-only", action="store_true", help="only the forward time and the latency")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print_header()
    print(f"server threads {args.threads}")

    with tempfile.TemporaryDirectory() as folder:
        run_dir = args.run or train_digits(Path(folder) / "digits", args.epochs)
        print(f"digits run: {auto_line(run_dir)}", flush=True)
        records, labels = digit_records(run_dir, 64)
        spec = f"{MODEL}={run_dir}"

        levels = [] if args.latency_only else [int(c) for c in args.concurrency.split(",")]
        table = throughput(spec, args.threads, records, labels, levels, args.seconds, args.rounds)
        if levels:
            print(
                f"\nrequests/s, one record per request (median of {args.rounds} rounds of {args.seconds:g} s a cell, "
                "servers alternating; every answer checked)"
            )
            print("| concurrency | batching off | batching on | on/off | rows per pass (on) |")
            print("|---:|---:|---:|---:|---:|")
        for level in levels:
            off, on = table["off"][level], table["on"][level]
            print(f"| {level} | {off[0]:,.0f} | {on[0]:,.0f} | {on[0] / off[0]:.2f}x | {on[1]:.1f} |")
        if 32 in levels:
            ratio = table["on"][32][0] / table["off"][32][0]
            verdict = "met" if ratio >= 3 else "NOT met"
            print(f"floor: batching on/off at concurrency 32 = {ratio:.2f}x (>= 3x): {verdict}")

        engines = [engine(name, run_dir, records[0], args.threads) for name in ("torch", "eager")]
        onnx_dir = with_onnx_export(run_dir, Path(folder))
        if onnx_dir is not None:
            engines.append(engine("onnx", onnx_dir, records[0], args.threads))
        print_latency(latency(engines, args.threads, records, labels, args.latency_requests), args.latency_requests)

        if not (args.skip_gpt or args.latency_only):
            gpt_dir = args.gpt_run or train_gpt(Path(folder) / "gpt", args.gpt_steps)
            print(f"\nGPT run: {auto_line(gpt_dir)}", flush=True)
            print(f"\nGPT generation, {args.tokens} tokens per stream, server-sent events")
            print("| streams | time to first token (median) | tokens/s per stream | tokens/s in all |")
            print("|---:|---:|---:|---:|")
            with server(f"{GPT}={gpt_dir}", args.threads) as port:
                for concurrency in (1, 8):
                    first, per_stream, total = asyncio.run(streams(port, concurrency, args.tokens))
                    print(f"| {concurrency} | {first:.1f} ms | {per_stream:,.0f} | {total:,.0f} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


def throughput(
    spec: str, threads: int, records: list, labels: list, levels: list[int], seconds: float, rounds: int
) -> dict[str, dict[int, tuple[float, float]]]:
    """Requests/s and mean rows per pass for batching off and on at each concurrency level: both servers up,
    taking turns round by round, the median round per cell (a spell of other work on the machine then
    lands in one round of one server, not in a whole column)."""
    if not levels:
        return {}
    per_second: dict[str, dict[int, list[float]]] = {mode: {level: [] for level in levels} for mode in BATCHING}
    rows_per_pass: dict[str, dict[int, list[float]]] = {mode: {level: [] for level in levels} for mode in BATCHING}
    with ExitStack() as stack:
        ports = {mode: stack.enter_context(server(spec, threads, *options)) for mode, options in BATCHING.items()}
        requests = {mode: [predict_request(port, r) for r in records] for mode, port in ports.items()}
        for level in levels:
            for _ in range(rounds):
                for mode, port in ports.items():
                    passes_before, rows_before = passes_and_rows(port)
                    result = asyncio.run(load(port, requests[mode], labels, level, seconds))
                    passes, rows = passes_and_rows(port)
                    per_second[mode][level].append(result.per_second)
                    rows_per_pass[mode][level].append((rows - rows_before) / max(passes - passes_before, 1))
    return {
        mode: {
            level: (float(np.median(per_second[mode][level])), float(np.mean(rows_per_pass[mode][level])))
            for level in levels
        }
        for mode in BATCHING
    }


@dataclass
class LatencyRow:
    server: str
    forward_ms: list[float]  # the model alone, in this process
    latency_ms: list[float] = field(default_factory=list)  # each request, at the client
    pass_ms: list[float] = field(default_factory=list)  # each request's own pass in the server (Server-Timing)

    @property
    def added_ms(self) -> np.ndarray:
        """What serving added to each request: its latency less its own pass."""
        return np.asarray(self.latency_ms) - np.asarray(self.pass_ms)


def latency(engines: list[Engine], threads: int, records: list, labels: list, count: int) -> list[LatencyRow]:
    """Latency at concurrency 1 of a server per engine (and the torch one with lone requests on the model
    thread), in alternating rounds; each round also times the engine's forward pass in this process,
    so forward and latency figures come from the same spells of this machine."""
    rounds = 5
    servers = [(e, e.name, ("--engine", e.name)) for e in engines]
    servers.insert(1, (engines[0], "torch, --inline-ms 0", ("--engine", "torch", "--inline-ms", "0")))
    rows = {name: LatencyRow(name, []) for _, name, _ in servers}
    with ExitStack() as stack:
        ports = {name: stack.enter_context(server(f"{MODEL}={e.run_dir}", threads, *o)) for e, name, o in servers}
        for _ in range(rounds):
            for each, name, _ in servers:
                row = rows[name]
                row.forward_ms += call_times(each.model, count // rounds // 2)
                requests = [predict_request(ports[name], r) for r in records]
                for elapsed, pass_ms in asyncio.run(latency_run(ports[name], requests, labels, count // rounds)):
                    row.latency_ms.append(elapsed)
                    row.pass_ms.append(pass_ms)
    return list(rows.values())


def print_latency(rows: list[LatencyRow], count: int) -> None:
    print(f"\nlatency at concurrency 1, batching on ({count} requests a server, rounds interleaved), in ms;")
    print("forward: the model alone on one row, in this process, same rounds; pass: each request's own predict pass")
    print("in the server (preprocessing, forward, answers; its Server-Timing header); added: latency less that pass")
    print("| server | forward p50 / p99 | pass p50 / p99 | latency p50 | latency p99 | added p50 / p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        forward, passes, added = (np.percentile(v, [50, 99]) for v in (row.forward_ms, row.pass_ms, row.added_ms))
        p50, p99 = np.percentile(row.latency_ms, [50, 99])
        print(
            f"| {row.server} | {forward[0]:.3f} / {forward[1]:.3f} | {passes[0]:.3f} / {passes[1]:.3f} "
            f"| {p50:.3f} | {p99:.3f} | {added[0]:.3f} / {added[1]:.3f} |"
        )
    for row in rows:
        added = float(np.percentile(row.added_ms, 99))
        forward, p99 = float(np.percentile(row.forward_ms, 50)), float(np.percentile(row.latency_ms, 99))
        print(
            f"floor ({row.server}): 99 % of requests within their own pass + 2 ms (added p99 {added:.3f} ms): "
            f"{'met' if added <= 2 else 'NOT met'}; p99 {p99:.3f} ms <= median forward {forward:.3f} ms + 2 ms: "
            f"{'met' if p99 <= forward + 2 else 'NOT met'}"
        )


async def latency_run(port: int, requests: list[bytes], labels: list[Any], count: int) -> list[tuple[float, float]]:
    """Sequential requests on one keep-alive connection, every answer checked: (latency, its pass) in ms."""
    connection = await connect(port)
    out = []
    try:
        for i in range(count + 100):
            index = i % len(requests)
            started = time.perf_counter()
            status, head, body = await connection.send(requests[index])
            elapsed = (time.perf_counter() - started) * 1000
            assert status == 200 and json.loads(body)["predictions"][0]["label"] == labels[index], body[:200]
            timing = re.search(rb"(?i)\r\nserver-timing: .*model;dur=([\d.]+)", head)
            assert timing is not None, head
            if i >= 100:  # the first hundred warm up
                out.append((elapsed, float(timing.group(1))))
    finally:
        assert connection.transport is not None
        connection.transport.close()
    return out


if __name__ == "__main__":
    main()
