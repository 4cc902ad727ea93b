"""Shared fixtures for the serve tests: tiny real runs (digits CNN, diabetes regression) and a live server.

The runs are trained once per session on the bundled example data with one torch thread
(on a busy 2-core machine the default thread count makes tiny convolutions crawl).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples" / "data" / "digits.npz"
DIABETES = REPO / "examples" / "data" / "diabetes.csv"


@contextmanager
def one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_tiny(config: dict[str, Any], out: Path) -> Path:
    from modelforge.config import load_config
    from modelforge.train.recipe import train

    with one_torch_thread():
        train(load_config(config), out)
    return out


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = {
        "task": "classification",
        "seed": 0,
        "data": {"train": str(DIGITS), "target": "y"},
        "features": [{"name": "x", "type": "image"}],
        "model": {"type": "cnn", "channels": [8, 16], "convs_per_block": 1},
        "train": {"epochs": 2, "batch_size": 64, "lr": 3e-3},
    }
    return train_tiny(config, tmp_path_factory.mktemp("serve") / "digits")


@pytest.fixture(scope="session")
def diabetes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = {
        "task": "regression",
        "seed": 0,
        "data": {"train": str(DIABETES), "target": "progression"},
        "model": {"type": "mlp"},
        "train": {"epochs": 1, "batch_size": 64},
    }
    return train_tiny(config, tmp_path_factory.mktemp("serve") / "diabetes")


@pytest.fixture(scope="session")
def digits_pixels() -> np.ndarray:
    with np.load(DIGITS) as arrays:
        return arrays["x"].astype(np.float64)


@pytest.fixture(scope="session")
def diabetes_rows() -> list[dict[str, float]]:
    import pandas as pd

    frame = pd.read_csv(DIABETES).drop(columns=["progression"])
    return frame.to_dict(orient="records")


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn in a thread on a free loopback port; yields the base URL."""
    import uvicorn

    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def serve_live() -> Any:
    """`live_server` as a fixture (test modules here are not a package, so they cannot import it)."""
    return live_server
