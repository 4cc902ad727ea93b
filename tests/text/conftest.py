"""Shared fixtures: a slice of tinyshakespeare and one tiny GPT run trained through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli_runner import modelforge

SHAKESPEARE = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "tinyshakespeare" / "input.txt"
FALLBACK = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "ROMEO:\nBut, soft! what light through yonder window breaks?\n\n"  # the tests prompt with ROMEO:
)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 kB of real Shakespeare (or a repeated excerpt when the shared folder is absent)."""
    text = SHAKESPEARE.read_text(encoding="utf-8")[:30_000] if SHAKESPEARE.exists() else FALLBACK * 300
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_text(text, encoding="utf-8")
    return path


TINY = {
    "task": "language-modeling",
    "data": {"train": "shakespeare.txt", "tokenizer": "char", "valid_fraction": 0.1},
    "model": {"type": "gpt", "layers": 2, "heads": 2, "width": 32, "context": 32, "dropout": 0.0},
    "train": {
        "batch_size": 8,
        "max_steps": 20,
        "lr": 3.0e-3,
        "min_lr": 3.0e-4,
        "warmup_steps": 2,
        "weight_decay": 0.1,
        "betas": [0.9, 0.99],
        "grad_clip": 1.0,
        "eval_every": 10,
        "eval_batches": 2,
        "compile": False,
        "threads": 1,
    },
}


@pytest.fixture(scope="session")
def tiny_config(corpus: Path) -> Path:
    path = corpus.parent / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_config: Path) -> Path:
    """A 20-step char GPT trained through `modelforge train`."""
    out = tiny_config.parent / "runs" / "tiny"
    result = modelforge("train", str(tiny_config), "--out", str(out), "--no-progress", "--set", "train.max_steps=20")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def tiny_learned_positions_run(tiny_config: Path) -> Path:
    """The tiny GPT with learned positions (`model.rope: false`): the layout GPT-2 export needs."""
    out = tiny_config.parent / "runs" / "tiny-learned-positions"
    result = modelforge("train", str(tiny_config), "--out", str(out), "--no-progress", "--set", "model.rope=false")
    assert result.returncode == 0, result.stderr
    return out
