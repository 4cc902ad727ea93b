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
        (["x", "--port", "70000"], "--port must be <= 65535, got 70000"),  # uvicorn listened on 70000 % 65536
        (["x", "--api-key", ""], "--api-key: the API key is empty"),
        (["x", "--api-key", " "], "--api-key: the API key is empty"),
        (["x", "--api-key-file", "/no/such/key"], "--api-key-file /no/such/key: cannot read it"),
        (["x", "--api-key", "a", "--api-key-file", "k"], "--api-key and --api-key-file: give one of them"),
        (["x", "--allowed-hosts", " , "], "--allowed-hosts is empty"),
        (["x", "--body-timeout", "0"], "--body-timeout must be >= 0.001, got 0.0"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    done = subprocess.run(modelforge("serve", *args), capture_output=True, text=True, timeout=120, env=quiet_env())
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_an_empty_key_in_the_environment_is_refused_not_taken_as_no_key() -> None:
    env = {**quiet_env(), "MODELFORGE_API_KEY": ""}
    done = subprocess.run(modelforge("serve", "x"), capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "MODELFORGE_API_KEY: the API key is empty" in done.stderr, done.stderr


def test_the_key_file_gives_its_first_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelforge.errors import ModelforgeError
    from modelforge.serve.cli import resolve_api_key

    monkeypatch.delenv("MODELFORGE_API_KEY", raising=False)
    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n", encoding="utf-8")
    assert resolve_api_key(None, key_file) == "s3cret"
    assert resolve_api_key(None, None) is None
    monkeypatch.setenv("MODELFORGE_API_KEY", "from-env")
    assert resolve_api_key(None, None) == "from-env"
    key_file.write_text("\n", encoding="utf-8")
    with pytest.raises(ModelforgeError, match="the API key is empty"):
        resolve_api_key(None, key_file)


def test_a_public_address_without_a_key_warns_and_port_0_prints_the_port(digits_run: Path) -> None:
    command = modelforge("serve", f"digits={digits_run}", "--host", "0.0.0.0", "--port", "0", "--threads", "1")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=quiet_env())
    try:
        lines = []
        for line in process.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("listening on "):
                break
        log = "".join(lines)
        assert "WARNING: serving on 0.0.0.0, reachable from other machines, without an API key" in log, log
        port = int(lines[-1].rsplit(":", 1)[1])
        assert 0 < port < 65536
        wait_ready(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


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


def test_the_key_file_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelforge.serve.cli import resolve_api_key

    key_file = tmp_path / "key"
    key_file.write_text("from-file\n", encoding="utf-8")
    monkeypatch.setenv("MODELFORGE_API_KEY", "from-env")
    assert resolve_api_key("from-env", key_file) == "from-file"  # typer passes the variable as --api-key
