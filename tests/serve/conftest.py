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
import pandas as pd
import pytest

import modelforge

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
    from modelforge.training.recipe import train

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
def cancer_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The breast-cancer example's 30 numeric columns (the table model a key flood took 37.8 s on)."""
    config = {
        "task": "classification",
        "seed": 0,
        "data": {"train": str(REPO / "examples" / "data" / "breast_cancer.csv"), "target": "diagnosis"},
        "model": {"type": "mlp"},
        "train": {"epochs": 1, "batch_size": 64},
    }
    return train_tiny(config, tmp_path_factory.mktemp("serve") / "cancer")


@pytest.fixture(scope="session")
def digits_pixels() -> np.ndarray:
    with np.load(DIGITS) as arrays:
        return arrays["x"].astype(np.float64)


@pytest.fixture(scope="session")
def diabetes_rows() -> list[dict[str, float]]:
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


SHAKESPEARE = REPO.parent / "shared" / "datasets" / "tinyshakespeare" / "input.txt"
FALLBACK_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "ROMEO:\nBut, soft! what light through yonder window breaks?\n\n"  # the tests prompt with ROMEO:
)


@pytest.fixture(scope="session")
def gpt_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20-step character GPT on 30 kB of tinyshakespeare (a repeated excerpt without the shared folder)."""
    try:
        from modelforge.text.generate import load_generator  # noqa: F401
        from modelforge.training.lm import train_language_model
    except ImportError as exc:
        pytest.skip(f"language-model generation is not available ({exc})")
    from modelforge.config import load_config

    folder = tmp_path_factory.mktemp("corpus")
    text = SHAKESPEARE.read_text(encoding="utf-8")[:30_000] if SHAKESPEARE.exists() else FALLBACK_TEXT * 300
    (folder / "shakespeare.txt").write_text(text, encoding="utf-8")
    config = {
        "task": "language-modeling",
        "data": {"train": str(folder / "shakespeare.txt"), "tokenizer": "char", "valid_fraction": 0.1},
        "model": {"type": "gpt", "layers": 2, "heads": 2, "width": 32, "context": 32, "dropout": 0.0},
        "train": {"batch_size": 8, "max_steps": 20, "lr": 3e-3, "eval_every": 10, "eval_batches": 2, "threads": 1},
    }
    out = tmp_path_factory.mktemp("serve") / "gpt"
    with one_torch_thread():
        train_language_model(load_config(config), out, show_progress=False)
    return out


@pytest.fixture(scope="session")
def recommend_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Matrix factorization on 30 users × 16 items: even users like even items, odd users odd ones."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(30):
        for step, item in enumerate(rng.choice(16, size=10, replace=False)):
            liked = item % 2 == user % 2
            rows.append((f"u{user}", f"i{item}", int(rng.integers(4, 6)) if liked else 1, step))
    folder = tmp_path_factory.mktemp("ratings")
    pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    config = {
        "task": "recommendation",
        "seed": 0,
        "data": {"train": str(folder / "ratings.csv")},
        "recommend": {"k": 5},
        "model": {"type": "mf", "dim": 4},
        "train": {"epochs": 15, "batch_size": 64, "lr": 0.05, "weight_decay": 0.0, "threads": 1},
    }
    return modelforge.train(config, folder / "run")


@pytest.fixture(scope="session")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = {
        "task": "generation",
        "seed": 0,
        "data": {"train": str(DIGITS), "target": "y"},
        "model": {"type": "vae"},
        "train": {"epochs": 1, "batch_size": 64, "lr": 1e-3, "threads": 1},
    }
    return modelforge.train(config, tmp_path_factory.mktemp("vae") / "run")
