"""Hostile bodies against a real `modelforge serve` process: how long their 4xx takes, and /healthz meanwhile.

    .venv/bin/python bench/serve_hostile.py                 # trains a tiny digits CNN and breast-cancer MLP first
    .venv/bin/python bench/serve_hostile.py --out /tmp/hostile_runs

For each body, sent once while another client polls `GET /healthz` every 2 ms: the status, the
time to the answer (upload included) and the longest and median /healthz wait. Bodies: one
record of 300,000 unknown keys (5.1 MB `junk000000` keys and 4.1 MB `c0` keys; the issue's
was 2.9 MB) to the 64-pixel digits CNN and to the 30-column breast-cancer MLP, and a legitimate
10,000-row breast-cancer request (8.1 MB). Floor: /healthz waits under 100 ms throughout.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
from _machine import auto_line, print_header

REPO = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/json"}


def train_runs(out: Path) -> None:
    from modelforge.config import load_config
    from modelforge.training.recipe import train

    configs = {
        "digits": {
            "task": "classification",
            "seed": 0,
            "data": {"train": str(REPO / "examples/data/digits.npz"), "target": "y"},
            "features": [{"name": "x", "type": "image"}],
            "model": {"type": "cnn", "channels": [8, 16], "convs_per_block": 1},
            "train": {"epochs": 1, "batch_size": 64, "threads": 1},
        },
        "cancer": {
            "task": "classification",
            "seed": 0,
            "data": {"train": str(REPO / "examples/data/breast_cancer.csv"), "target": "diagnosis"},
            "model": {"type": "mlp"},
            "train": {"epochs": 1, "batch_size": 64, "threads": 1},
        },
    }
    for name, config in configs.items():
        if not (out / name / "model.safetensors").exists():
            train(load_config(config), out / name)
        print(f"{name}: {auto_line(out / name)}", flush=True)


def start_server(out: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "modelforge", "serve", f"digits={out / 'digits'}", f"cancer={out / 'cancer'}"]
    process = subprocess.Popen([*command, "--port", "0", "--threads", "1"], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    url = next(line.split()[-1] for line in process.stderr if line.startswith("listening on "))
    threading.Thread(target=process.stderr.read, daemon=True).start()
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)


def measure(url: str, model: str, body: bytes) -> tuple[int, float, list[float]]:
    """Status and seconds of the answer to `body`, and every /healthz wait while it was on its way."""
    answer: list[tuple[int, float]] = []

    def send() -> None:
        started = time.perf_counter()
        status = httpx.post(f"{url}/v1/models/{model}/predict", content=body, headers=JSON, timeout=120).status_code
        answer.append((status, time.perf_counter() - started))

    sender = threading.Thread(target=send)
    waits: list[float] = []
    with httpx.Client(base_url=url, timeout=120) as http:
        http.get("/healthz")
        sender.start()
        while sender.is_alive() or not waits:
            started = time.perf_counter()
            http.get("/healthz")
            waits.append(time.perf_counter() - started)
            time.sleep(0.002)
    sender.join()
    return answer[0][0], answer[0][1], sorted(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="where the tiny runs are trained (kept for reuse)")
    args = parser.parse_args()
    print_header()
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    out = args.out or Path(tempfile.mkdtemp(prefix="serve_hostile_"))
    train_runs(out)
    rows = pd.read_csv(REPO / "examples/data/breast_cancer.csv").drop(columns=["diagnosis"]).to_dict("records")
    bodies = {
        "300k junk keys (5.1 MB)": json.dumps({"records": [{f"junk{i:06d}": 0 for i in range(300_000)}]}).encode(),
        "300k short keys (4.1 MB)": json.dumps({"records": [{f"c{i}": 0 for i in range(300_000)}]}).encode(),
        "10,000 good rows (8.1 MB)": json.dumps({"records": (rows * 20)[:10_000]}).encode(),
    }
    process, url = start_server(out)
    print("| model | body | status | answer (ms) | /healthz max wait (ms) | median (ms) |")
    print("|---|---|---:|---:|---:|---:|")
    worst = 0.0
    try:
        for model in ("digits", "cancer"):
            for name, body in bodies.items():
                if model == "digits" and name.startswith("10,000"):
                    continue
                status, seconds, waits = measure(url, model, body)
                worst = max(worst, waits[-1])
                print(
                    f"| {model} | {name} | {status} | {seconds * 1000:.0f} | {waits[-1] * 1000:.1f} | "
                    f"{waits[len(waits) // 2] * 1000:.1f} |"
                )
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"floor /healthz < 100 ms: {'met' if worst < 0.1 else 'MISSED'} (worst {worst * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
