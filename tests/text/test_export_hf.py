"""`export_gpt_to_hf`: the folder loads in transformers as GPT2LMHeadModel with the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

VOCAB = 48


def test_hf_export_gives_the_same_logits(tiny_run: Path, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from modelforge.export.hf import export_gpt_to_hf
    from modelforge.text.run import load_language_model_run

    out = export_gpt_to_hf(tiny_run, tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["model_type"] == "gpt2"
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    run = load_language_model_run(tiny_run)
    tokens = torch.randint(0, run.model.config.vocab_size, (2, run.model.config.context))
    with torch.no_grad():
        assert torch.allclose(hf_model(tokens).logits, run.model(tokens), atol=1e-5)


def test_hf_export_refuses_rope(tiny_run: Path, tmp_path: Path) -> None:
    from modelforge.export.hf import HFExportError, gpt2_config

    with pytest.raises(HFExportError, match="RoPE"):
        gpt2_config({"rope": True}, VOCAB)
