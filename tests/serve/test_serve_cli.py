"""The `modelforge serve` verb end to end: a real server process, bad input, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from modelforge.run import load_run

REPO = Path(__file__).resolve().parents[2]


def modelforge(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelforge", *args]


def quiet_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/run"], "/no/such/run: run directory not found"),
        (["x", "--max-batch-size", "0"], "--max-batch-size must be >= 1, got 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    done = subprocess.run(modelforge("serve", *args), capture_output=True, text=True, timeout=120, env=quiet_env())
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[str], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


def test_serve_answers_then_finishes_in_flight_work_on_sigterm(digits_run: Path, gpt_run: Path, digits_pixels) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = modelforge("serve", f"digits={digits_run}", f"bard={gpt_run}", "--port", str(port), "--threads", "1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=quiet_env())
    try:
        wait_ready(url, process)
        models = httpx.get(f"{url}/v1/models").json()["models"]
        assert [(m["name"], m["task"]) for m in models] == [("digits", "classification"), ("bard", "language-modeling")]

        records = [{"x": digits_pixels[i].tolist()} for i in range(5)]
        answer = httpx.post(f"{url}/v1/models/digits/predict", json={"records": records}, timeout=30)
        expected = load_run(digits_run).predict(pd.DataFrame({"x": list(digits_pixels[:5])}))["prediction"].tolist()
        assert answer.status_code == 200 and [p["label"] for p in answer.json()["predictions"]] == expected

        # A streamed generation is in flight when SIGTERM arrives: it must finish, new connections must not.
        body = {"prompt": "ROMEO:", "max_new_tokens": 300, "temperature": 0, "stream": True}
        with httpx.stream("POST", f"{url}/v1/models/bard/generate", json=body, timeout=60) as stream:
            lines = stream.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{url}/healthz", timeout=2)
            rest = list(lines)
        tokens = [first, *(line for line in rest if line.startswith("data: ") and '"token"' in line)]
        assert "event: done" in rest and len(tokens) == 300
        done = json.loads(rest[rest.index("event: done") + 1].removeprefix("data: "))
        assert done["new_tokens"] == 300
        assert process.wait(timeout=30) == 0
        log = process.stderr.read()  # type: ignore[union-attr]
        assert f"model digits: classification run {digits_run}, torch frozen graph" in log, log
        assert "model bard: language-modeling run" in log, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
