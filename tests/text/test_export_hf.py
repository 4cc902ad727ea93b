"""`export_gpt_to_hf`: the folder loads in transformers as GPT2LMHeadModel with the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

VOCAB = 48


def test_hf_export_gives_the_same_logits(tiny_learned_positions_run: Path, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from modelforge.export.hf import export_gpt_to_hf
    from modelforge.text.run import load_language_model_run

    out = export_gpt_to_hf(tiny_learned_positions_run, tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["model_type"] == "gpt2"
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    run = load_language_model_run(tiny_learned_positions_run)
    tokens = torch.randint(0, run.model.config.vocab_size, (2, run.model.config.context))
    with torch.no_grad():
        assert torch.allclose(hf_model(tokens).logits, run.model(tokens), atol=1e-5)


def test_hf_export_refuses_rope(tiny_run: Path, tmp_path: Path) -> None:
    from modelforge.export.hf import HFExportError, gpt2_config

    with pytest.raises(HFExportError, match="rotary"):
        gpt2_config({"rope": True}, VOCAB)


def test_export_hf_cli_writes_a_loadable_folder_and_refuses_other_runs(
    tiny_learned_positions_run: Path, tiny_run: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from cli_runner import modelforge_in_process

    hf = tmp_path / "hf"
    result = modelforge_in_process("export", str(tiny_learned_positions_run), "--format", "hf", "--out", str(hf))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["n_layer"] == 2
    assert load_file(tmp_path / "hf" / "model.safetensors")["transformer.wte.weight"].shape[1] == 32
    not_a_run = tmp_path / "folder"
    not_a_run.mkdir()
    refused = modelforge_in_process("export", str(not_a_run), "--format", "hf", "--out", str(tmp_path / "hf2"))
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a run directory" in lines[0], refused.stderr
    rotary = modelforge_in_process("export", str(tiny_run), "--format", "hf", "--out", str(tmp_path / "hf3"))
    assert rotary.returncode == 2 and len(rotary.stderr.strip().splitlines()) == 1, rotary.stderr
    assert "model.rope: false" in rotary.stderr and not (tmp_path / "hf3").exists()


def test_export_hf_refuses_a_folder_that_holds_files_and_leaves_them_as_they_were(
    tiny_learned_positions_run: Path, tmp_path: Path
) -> None:
    from cli_runner import modelforge_in_process

    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    (out / "model.safetensors").write_bytes(b"my weights")
    refused = modelforge_in_process("export", str(tiny_learned_positions_run), "--format", "hf", "--out", str(out))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"error: {out}: output directory exists and is not empty; choose another or remove it"
    ]
    assert (out / "config.json").read_text() == '{"mine": true}' and (
        out / "model.safetensors"
    ).read_bytes() == b"my weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staged temporary left beside it
