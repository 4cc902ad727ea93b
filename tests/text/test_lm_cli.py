"""End to end through the CLI: init, train (20 steps), evaluate, generate, and bad input → exit 2."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml

import modelforge as mf
from cli_runner import modelforge, modelforge_in_process
from modelforge.config import load_config
from modelforge.errors import ConfigError
from modelforge.text.generate import GenerationError, load_generator


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_train_writes_a_complete_run(tiny_run: Path) -> None:
    for name in ("config.yaml", "tokenizer.json", "model.safetensors", "model.json", "eval.json", "environment.json"):
        assert (tiny_run / name).is_file(), name
    evaluation = json.loads((tiny_run / "eval.json").read_text())
    assert evaluation["steps"] == 20 and evaluation["tokens_per_second"] > 0
    assert 0 < evaluation["val_loss"] < 4.2  # uniform over ~60 chars would be ln(60) ≈ 4.1
    assert math.isclose(evaluation["perplexity"], math.exp(evaluation["val_loss"]))
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [10, 20]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert isinstance(rows[-1]["sample"], str) and len(rows[-1]["sample"]) > 0
    assert yaml.safe_load((tiny_run / "config.yaml").read_text())["model"]["type"] == "gpt"


def test_second_run_reuses_the_token_cache(tiny_config: Path, tiny_run: Path) -> None:
    run = mf.train(tiny_config, tiny_run.parent / "again", overrides=["train.max_steps=2"])
    environment = json.loads((run.path / "environment.json").read_text())
    assert environment["token_cache"]["reused"] is True
    assert Path(environment["token_cache"]["path"]).parent == tiny_run.parent / ".token-cache"


def test_evaluate_json_on_the_run_and_on_another_text(tiny_run: Path, corpus: Path, tmp_path: Path) -> None:
    saved = mf.load_run(tiny_run).metrics
    assert saved["val_loss"] > 0
    other = tmp_path / "other.txt"
    other.write_text(corpus.read_text()[-3000:])
    result = modelforge("evaluate", str(tiny_run), "--json", "--data", str(other))
    assert result.returncode == 0, result.stderr
    scored = json.loads(result.stdout)
    assert scored["tokens"] == 3000 and scored["val_loss"] > 0
    assert math.isclose(scored["perplexity"], math.exp(scored["val_loss"]))


def test_generate_is_deterministic_for_a_seed(tiny_run: Path) -> None:
    args = ("generate", str(tiny_run), "--prompt", "ROMEO:", "--max-new-tokens", "50", "--seed", "3")
    first, second = modelforge(*args), modelforge_in_process(*args, "--stream")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.startswith("ROMEO:") and len(first.stdout.rstrip("\n")) == len("ROMEO:") + 50
    generator = load_generator(tiny_run)
    assert generator.generate("ROMEO:", 50, seed=3) == first.stdout.rstrip("\n")[len("ROMEO:") :]
    assert generator.generate("ROMEO:", 50, seed=4) != generator.generate("ROMEO:", 50, seed=3)


def test_init_writes_the_contract_config(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "cfg.yaml"
    result = modelforge_in_process("init", str(corpus), "--task", "language-modeling", "--out", str(out))
    assert result.returncode == 0, result.stderr
    config = load_config(out)
    assert config.task == "language-modeling" and Path(str(config.data.train)) == corpus.resolve()
    assert config.model.type == "gpt" and config.model.options()["context"] == 64
    assert config.train.max_steps == 2000 and config.train.betas == (0.9, 0.99)


def test_bad_input_exits_2_with_one_line(tiny_run: Path, tiny_config: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    args = ("train", str(tiny_config), "--out", str(tmp_path / "x"), "--set", f"data.train={empty}")
    assert_one_line_error(modelforge_in_process(*args), "empty")
    assert_one_line_error(modelforge_in_process("init", str(binary), "--task", "language-modeling"), "binary")
    outside = modelforge_in_process("generate", str(tiny_run), "--prompt", "ROMEO 🚀")
    assert_one_line_error(outside, "outside the char vocabulary")


def test_bad_generation_requests_and_model_family(tiny_run: Path, tiny_config: Path, tmp_path: Path) -> None:
    generator = load_generator(tiny_run)
    with pytest.raises(GenerationError, match="longer than the model's context of 32"):
        generator.generate("a" * 40)
    with pytest.raises(GenerationError, match="top_p"):
        generator.generate("a", top_p=1.5)
    with pytest.raises(ConfigError, match="model"):
        mf.train(tiny_config, tmp_path / "y", overrides=["model.type=mlp"])


def test_evaluate_and_generate_bad_input_exit_2(tiny_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_one_line_error(modelforge_in_process("evaluate", str(tiny_run), "--json", "--data", str(empty)), "empty")
    too_long = modelforge_in_process("generate", str(tiny_run), "--prompt", "a" * 40, "--max-new-tokens", "5")
    assert_one_line_error(too_long, "context of 32")
