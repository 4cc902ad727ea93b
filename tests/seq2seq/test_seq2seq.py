"""task: seq2seq end to end on digits → words (tests/seq2seq/conftest.py): it learns, and evaluate,
predict, generate and serve give the translations; decoding (beam ≥ greedy, cache = recomputation);
tokenizers round-trip; init on a table and on line-aligned files; bad input refused in one line."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from number_words import number_pairs, number_words, tiny_config

from cli_runner import modelforge_in_process, newest_step, signal_when
from modelforge.config import load_config
from modelforge.errors import ConfigError
from modelforge.seq2seq.decode import beam_search, greedy_decode
from modelforge.seq2seq.metrics import translation_metrics
from modelforge.seq2seq.recipe import train_seq2seq
from modelforge.seq2seq.run import load_seq2seq_run, pad_rows
from modelforge.seq2seq.tokenize import fit_tokenizer, load_side_tokenizer, save_side_tokenizer


def one_line_exit_2(*args: str) -> str:
    result = modelforge_in_process(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, f"rc {result.returncode}: {result.stderr[-1500:]}"
    return lines[0]


# ----------------------------------------------------------------------------- the task, end to end
def test_a_small_model_learns_digits_to_words(numbers_run: Path) -> None:
    run = load_seq2seq_run(numbers_run)
    assert run.metrics["split"] == "test" and run.metrics["exact_match"] >= 0.85, run.metrics
    assert run.metrics["bleu"] >= 85 and run.metrics["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert run.translate(["407", "999"]) == ["four hundred seven", "nine hundred ninety nine"]


def test_evaluate_prints_bleu_chrf_and_error_rates(numbers_run: Path, tmp_path: Path) -> None:
    frame = number_pairs(200, seed=3)
    frame.to_csv(tmp_path / "test.csv", index=False)
    result = modelforge_in_process("evaluate", str(numbers_run), "--data", str(tmp_path / "test.csv"), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert {"bleu", "chrf", "bleu_signature", "chrf_signature", "cer", "wer", "exact_match"} <= set(metrics)
    assert metrics["bleu"] > 80 and metrics["cer"] < 0.1 and metrics["n"] == 200


def test_predict_writes_a_prediction_column(numbers_run: Path, tmp_path: Path) -> None:
    pd.DataFrame({"digits": ["407", "58", "100"]}).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "preds.csv"
    result = modelforge_in_process("predict", str(numbers_run), "--data", str(tmp_path / "new.csv"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["row", "prediction"]
    assert predictions["prediction"][0] == "four hundred seven" and predictions["prediction"][2] == "one hundred"


@pytest.mark.parametrize("beam", ["1", "4"])
def test_generate_prints_the_translation(numbers_run: Path, beam: str) -> None:
    result = modelforge_in_process("generate", str(numbers_run), "--prompt", "407", "--beam", beam)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "four hundred seven"


def test_serve_answers_records_with_text(numbers_run: Path) -> None:
    from fastapi.testclient import TestClient

    from modelforge.serve.app import create_app
    from modelforge.serve.services import load_services

    with TestClient(create_app(load_services([f"numbers={numbers_run}"]))) as client:
        info = client.get("/v1/models/numbers").json()
        assert info["endpoint"] == "predict" and info["features"][0]["name"] == "digits"
        answer = client.post("/v1/models/numbers/predict", json={"records": [{"digits": "407"}, {"digits": "999"}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [{"text": "four hundred seven"}, {"text": "nine hundred ninety nine"}]
        wrong = client.post("/v1/models/numbers/predict", json={"records": [{"german": "407"}]})
        assert wrong.status_code == 422 and "digits" in wrong.text
        too_long = client.post("/v1/models/numbers/predict", json={"records": [{"digits": "4" * 500}]})
        assert too_long.status_code == 422 and "limit" in too_long.text


def test_report_shows_samples_and_bleu_by_length(numbers_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = modelforge_in_process("report", str(numbers_run), "--out", str(out), "--no-explain")
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert "Sample translations" in page and "BLEU by source length" in page and "hundred" in page


# ----------------------------------------------------------------------------- decoding
def test_beam_is_at_least_as_good_as_greedy_and_the_cache_changes_nothing(numbers_run: Path) -> None:
    run = load_seq2seq_run(numbers_run)
    frame = number_pairs(300, seed=7)
    sources = pad_rows([[*run.source_tokenizer.encode(s), 2] for s in frame["digits"]])
    greedy = greedy_decode(run.model, sources, 16, cache=True)
    assert greedy == greedy_decode(run.model, sources, 16, cache=False)
    beamed = beam_search(run.model, sources, 16, beam=4, alpha=0.6, cache=True)
    assert beamed == beam_search(run.model, sources, 16, beam=4, alpha=0.6, cache=False)
    references = list(frame["words"])

    def bleu(ids: list[list[int]]) -> float:
        return float(translation_metrics([run.target_tokenizer.decode(r) for r in ids], references)["bleu"])

    assert bleu(beamed) >= bleu(greedy) - 0.5  # on a near-perfect model the two mostly agree


def test_decode_step_with_cache_matches_the_full_decoder() -> None:
    from modelforge.models.registry import build_model
    from modelforge.models.seq2seq import Seq2SeqSpec

    torch.manual_seed(0)
    model = build_model("seq2seq_transformer", Seq2SeqSpec(30, 40), 40, {"width": 32, "heads": 4, "ffn": 64}).eval()
    source = torch.randint(4, 30, (3, 9))
    source[0, 6:] = 0
    target = torch.randint(4, 40, (3, 7))
    with torch.no_grad():
        full = model(source, target)
        cache = model.new_cache(*model.encode(source))
        stepped = torch.stack([model.decode_step(target[:, i], cache) for i in range(7)], dim=1)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["bpe", "unigram", "char", "symbols"])
def test_tokenizers_round_trip_exactly_and_save(kind: str, tmp_path: Path) -> None:
    texts = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee!", "HH AH0 L OW1", "ça coûte 3 € — ok?"] * 20
    tokenizer = fit_tokenizer(kind, 300, texts)
    save_side_tokenizer(tokenizer, tmp_path / "tok.json")
    loaded = load_side_tokenizer(tmp_path / "tok.json")
    for text in texts[:4]:
        assert loaded.encode(text) == tokenizer.encode(text)
        assert loaded.decode(loaded.encode(text)) == text
    if kind in ("bpe", "unigram"):  # byte-level: text never seen encodes and decodes exactly too
        unseen = "Ωμέγα 🚲 Fahrräder"
        assert loaded.decode(loaded.encode(unseen)) == unseen


# ----------------------------------------------------------------------------- checkpoints
def test_a_killed_run_resumed_ends_bitwise_equal(numbers_csv: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    config = tiny_config(str(numbers_csv), epochs=3, checkpoint_every=5)
    reference = train_seq2seq(load_config(config), tmp_path / "reference").path
    run_dir = tmp_path / "stopped"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "modelforge", "train", str(tmp_path / "run.yaml"), "--no-progress"]
    process = subprocess.Popen(
        [*command, "--out", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    signal_when(process, lambda: newest_step(run_dir) >= 30, signal.SIGKILL)  # past epoch 1 (25 steps)
    assert not (run_dir / "model.json").exists()
    resumed = train_seq2seq(load_config(config), resume=run_dir)
    assert (resumed.path / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(load_seq2seq_run(reference).history)


def test_bf16_training_follows_the_fp32_loss(numbers_csv: Path, tmp_path: Path) -> None:
    """train.precision: bf16 runs the teacher-forced step under autocast: the loss differs from fp32's in
    its last digits, not in its course (the probe takes bf16 only where it is faster; here it is forced)."""
    losses = {}
    for precision in ("fp32", "bf16"):
        config = tiny_config(str(numbers_csv), precision=precision, max_steps=24, epochs=1)
        run = train_seq2seq(load_config(config), tmp_path / precision)
        losses[precision] = run.history[0]["train_loss"]
    assert losses["bf16"] != losses["fp32"]  # autocast ran
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"], losses


# ----------------------------------------------------------------------------- init
def test_init_on_a_pairs_table_trains_without_edits(numbers_csv: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "cfg.yaml"
    result = modelforge_in_process(
        "init", str(numbers_csv), "--target", "words", "--task", "seq2seq", "--out", str(config_path)
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(config_path.read_text())
    assert config["seq2seq"]["source_tokenizer"] == "char" and config["seq2seq"]["target_tokenizer"] == "symbols"
    assert config["data"]["source"] == "digits" and config["model"]["type"] == "seq2seq_transformer"
    loaded = load_config(config_path, ["train.epochs=1", "train.threads=1"])  # one epoch: the config is valid as is
    run = train_seq2seq(loaded, tmp_path / "run")
    assert run.metrics["n"] > 0


def test_a_split_column_is_the_split_and_not_a_source_column(numbers_csv: Path, tmp_path: Path) -> None:
    """A table with its own split column (Hugging Face's "validation" among them): init writes it as
    data.split.column rather than failing to pick the source among two text columns, and its rows are
    the run's parts."""
    from modelforge.errors import DataError
    from modelforge.seq2seq.data import split_pairs

    frame = pd.read_csv(numbers_csv).head(60)
    frame["split"] = ["train"] * 40 + ["validation"] * 10 + ["test"] * 10
    table = tmp_path / "published.csv"
    frame.to_csv(table, index=False)
    result = modelforge_in_process("init", str(table), "--target", "words", "--task", "seq2seq")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)["data"]
    assert data["source"] == "digits" and data["split"] == {"column": "split", "valid": 0.0, "test": 0.0}
    train, valid, test = split_pairs(load_config({**tiny_config(str(table)), "data": data}).data, seed=0)
    assert (len(train), len(valid)) == (40, 10) and test is not None
    assert test.sources == [str(v) for v in frame["digits"][50:]]
    frame.assign(split=["train"] * 59 + ["later"]).to_csv(table, index=False)
    with pytest.raises(DataError, match=r"data.split.column 'split': expected train, valid or test"):
        split_pairs(load_config({**tiny_config(str(table)), "data": data}).data, seed=0)


def test_init_on_two_line_aligned_files(tmp_path: Path) -> None:
    sentences = [("ein hund läuft", "a dog runs"), ("zwei katzen schlafen", "two cats sleep")] * 40
    (tmp_path / "train.de").write_text("".join(f"{de}\n" for de, _ in sentences), encoding="utf-8")
    (tmp_path / "train.en").write_text("".join(f"{en}\n" for _, en in sentences), encoding="utf-8")
    (tmp_path / "val.de").write_text("ein hund läuft\n", encoding="utf-8")
    (tmp_path / "val.en").write_text("a dog runs\n", encoding="utf-8")
    config_path = tmp_path / "cfg.yaml"
    result = modelforge_in_process(
        "init", str(tmp_path / "train.de"), "--target", "en", "--task", "seq2seq", "--out", str(config_path)
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(config_path.read_text())
    assert config["data"]["train"] == {"source": "train.de", "target": "train.en"}
    assert config["data"]["valid"] == {"source": "val.de", "target": "val.en"}
    run = train_seq2seq(load_config(config_path, ["train.epochs=1", "train.threads=1"]), tmp_path / "run")
    assert run.source_name == "de" and run.target_name == "en"


def test_init_sizes_held_out_shares_and_epochs_to_the_data(tmp_path: Path) -> None:
    from modelforge.seq2seq.init import seq2seq_config

    letters = "abcdefghij"
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list(letters), size=rng.integers(3, 9))) for _ in range(60_000)]
    table = pd.DataFrame({"word": words, "spelled": [" ".join(w.upper()) for w in words]})
    table.to_csv(tmp_path / "many.csv", index=False)
    table.head(2000).to_csv(tmp_path / "few.csv", index=False)
    many = seq2seq_config(tmp_path / "many.csv", tmp_path / "cfg.yaml", target="spelled")
    few = seq2seq_config(tmp_path / "few.csv", tmp_path / "cfg.yaml", target="spelled")
    # 60,000 rows: 5,000 each for valid and test, not 6,000; short strings on both sides: 20 epochs at least
    assert many["data"]["split"] == {"valid": 0.0833, "test": 0.0833} and many["train"]["epochs"] == 20
    assert "split" not in few["data"] and few["train"]["epochs"] == 60  # 10 % each; 300,000 pairs seen
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(many))
    assert load_config(tmp_path / "cfg.yaml").data.split.valid == 0.0833  # the share is a key the task reads


# ----------------------------------------------------------------------------- bad input
def test_misaligned_files_and_empty_pairs_are_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.de").write_text("eins\nzwei\ndrei\n")
    (tmp_path / "a.en").write_text("one\ntwo\n")
    config = {
        "task": "seq2seq",
        "data": {"train": {"source": str(tmp_path / "a.de"), "target": str(tmp_path / "a.en")}},
    }
    (tmp_path / "misaligned.yaml").write_text(yaml.safe_dump(config))
    line = one_line_exit_2("train", str(tmp_path / "misaligned.yaml"), "--out", str(tmp_path / "r1"))
    assert "has 3 lines but" in line and "has 2" in line

    (tmp_path / "a.en").write_text("one\n\nthree\n")
    line = one_line_exit_2("train", str(tmp_path / "misaligned.yaml"), "--out", str(tmp_path / "r2"))
    assert "line 2 has an empty target" in line


def test_a_prompt_over_the_limit_and_a_missing_source_column_exit_2(numbers_run: Path, tmp_path: Path) -> None:
    line = one_line_exit_2("generate", str(numbers_run), "--prompt", "9" * 500)
    assert "longer than this model's limit" in line
    pd.DataFrame({"german": ["407"]}).to_csv(tmp_path / "wrong.csv", index=False)
    line = one_line_exit_2("predict", str(numbers_run), "--data", str(tmp_path / "wrong.csv"))
    assert "source column 'digits' missing" in line


def test_config_keys_the_task_does_not_read_are_errors(numbers_csv: Path, tmp_path: Path) -> None:
    config = tiny_config(str(numbers_csv))
    config["train"]["class_weights"] = "balanced"
    with pytest.raises(ConfigError, match=r"train\.class_weights: not used by task seq2seq"):
        load_config(config)
    files = {"task": "classification", "data": {"train": {"source": "a.de", "target": "a.en"}, "target": "y"}}
    with pytest.raises(ConfigError, match=r"data\.train: \{source, target\} files are read by seq2seq"):
        load_config(files)
    with pytest.raises(ConfigError, match=r"seq2seq: not used by task classification"):
        load_config({"task": "classification", "data": {"train": "x.csv"}, "seq2seq": {"beam": 2}})


def test_number_words_is_the_rule_the_tests_rely_on() -> None:
    assert [number_words(n) for n in (0, 13, 40, 407, 990)] == [
        "zero", "thirteen", "forty", "four hundred seven", "nine hundred ninety",
    ]  # fmt: skip


def test_tune_searches_a_seq2seq_config(numbers_csv: Path, tmp_path: Path) -> None:
    config = tiny_config(str(numbers_csv), epochs=1)
    config["tune"] = {"space": {"train.lr": {"loguniform": [1e-3, 5e-3]}}, "metric": "valid_bleu", "trials": 2}
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(config))
    result = modelforge_in_process("tune", str(tmp_path / "tune.yaml"), "--out", str(tmp_path / "study"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("complete") >= 2, result.stdout


def test_explain_writes_cross_attention_maps(numbers_run: Path, tmp_path: Path) -> None:
    pd.DataFrame({"digits": ["407", "58"]}).to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "explain"
    result = modelforge_in_process(
        "explain", str(numbers_run), "--data", str(tmp_path / "rows.csv"), "--rows", "0,1", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "attributions.json").read_text())
    first = saved["rows"][0]
    assert first["translation"] == "four hundred seven" and first["source_tokens"] == ["4", "0", "7", "</s>"]
    assert len(first["mean_over_layers"]) == len(first["target_tokens"])
    assert all(abs(sum(r) - 1) < 1e-3 for r in first["mean_over_layers"])  # each target token's weights sum to 1
    assert "row 0: '407'" in result.stdout and (out / "index.html").is_file()


def test_compress_int8_dynamic_keeps_the_translations(numbers_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    result = modelforge_in_process("compress", str(numbers_run), "--out", str(out), "--quantize", "int8-dynamic")
    assert result.returncode == 0, result.stderr
    compressed = load_seq2seq_run(out)
    assert compressed.model_info["quantization"] == "int8-dynamic"
    assert compressed.metrics["exact_match"] >= load_seq2seq_run(numbers_run).metrics["exact_match"] - 0.05
    assert compressed.translate(["407"]) == ["four hundred seven"]
    assert (out / "model.safetensors").stat().st_size < (numbers_run / "model.safetensors").stat().st_size
    assert modelforge_in_process("audit", str(out)).returncode == 0
    line = one_line_exit_2("compress", str(numbers_run), "--out", str(tmp_path / "p"), "--prune", "0.5")
    assert "int8-dynamic only" in line


def test_evaluate_reads_line_aligned_files_named_by_the_sides(tmp_path: Path) -> None:
    sentences = [("ein hund", "a dog"), ("zwei katzen", "two cats"), ("drei vögel", "three birds")] * 30
    (tmp_path / "train.de").write_text("".join(f"{de}\n" for de, _ in sentences), encoding="utf-8")
    (tmp_path / "train.en").write_text("".join(f"{en}\n" for _, en in sentences), encoding="utf-8")
    config = {
        "task": "seq2seq",
        "data": {"train": {"source": str(tmp_path / "train.de"), "target": str(tmp_path / "train.en")}},
        "model": {"width": 32, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "ffn": 64, "dropout": 0.0},
        "train": {"epochs": 8, "batch_size": 16, "lr": 3e-3, "warmup_steps": 5, "threads": 1},
        "seq2seq": {"source_tokenizer": "char", "target_tokenizer": "symbols", "beam": 2},
    }
    run = train_seq2seq(load_config(config), tmp_path / "run")
    (tmp_path / "test.de").write_text("ein hund\ndrei vögel\n", encoding="utf-8")
    (tmp_path / "test.en").write_text("a dog\nthree birds\n", encoding="utf-8")
    result = modelforge_in_process("evaluate", str(run.path), "--data", str(tmp_path / "test.de"), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 2 and metrics["exact_match"] == 1.0


def test_onnx_export_holds_the_encoder_and_the_cached_decoder_step(numbers_run: Path, tmp_path: Path) -> None:
    from modelforge.export.onnx import onnx_session
    from modelforge.seq2seq.onnx import OnnxTranslator

    out = tmp_path / "model.onnx"
    result = modelforge_in_process("export", str(numbers_run), "--format", "onnx", "--out", str(out))
    assert result.returncode == 0, result.stderr
    run = load_seq2seq_run(numbers_run)
    graph = OnnxTranslator(onnx_session(out), run.model)
    source = pad_rows([[*run.source_tokenizer.encode("407"), 2]]).numpy()
    _, tokens = graph.greedy_logits(source, 4)
    assert run.target_tokenizer.decode(tokens[0].tolist()) == "four hundred seven"
    line = one_line_exit_2("predict", str(numbers_run), "--data", str(tmp_path / "x.csv"), "--engine", "onnx")
    assert "--engine torch" in line


def test_a_shared_vocabulary_with_shared_embeddings_trains(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"src": ["ab cd", "cd ab", "ab ab", "cd cd"] * 20, "tgt": ["cd ab", "ab cd", "ab ab", "cd cd"] * 20}
    )
    frame.to_csv(tmp_path / "swap.csv", index=False)
    config = {
        "task": "seq2seq",
        "data": {"train": str(tmp_path / "swap.csv"), "target": "tgt"},
        "model": {
            "width": 32,
            "heads": 2,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "ffn": 64,
            "share_embeddings": True,
        },
        "train": {"epochs": 1, "batch_size": 16, "threads": 1},
        "seq2seq": {
            "source_tokenizer": "unigram",
            "target_tokenizer": "unigram",
            "shared_vocab": True,
            "source_vocab": 300,
        },
    }
    run = train_seq2seq(load_config(config), tmp_path / "run")
    assert run.model.source_embedding is run.model.target_embedding
    assert run.source_tokenizer.encode("ab cd") == run.target_tokenizer.encode("ab cd")
    reloaded = load_seq2seq_run(run.path)
    assert reloaded.model.source_embedding is reloaded.model.target_embedding
    config["seq2seq"]["target_tokenizer"] = "char"
    with pytest.raises(ConfigError, match="seq2seq: shared_vocab needs the same source_tokenizer and target_tokenizer"):
        load_config(config)
