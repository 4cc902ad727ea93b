"""Export a GPT language-model run as a Hugging Face GPT-2 folder.

    OUT/
      config.json              GPT2Config (model_type gpt2, GPT2LMHeadModel)
      model.safetensors        weights under GPT-2 names (Conv1D layout: transposed linears)
      modelforge_tokenizer.json   the run's tokenizer (char or bpe)
      tokenizer.json           for bpe runs: the `tokenizers` file PreTrainedTokenizerFast reads

`transformers.GPT2LMHeadModel.from_pretrained(OUT)` then gives the run's logits. GPT-2 has
learned positions, biases everywhere and exact-or-tanh GELU, so runs with `rope: true` or
`bias: false` cannot be exported this way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from modelforge.errors import ModelforgeError


class HFExportError(ModelforgeError):
    """The run cannot be written as a Hugging Face GPT-2 folder."""


def gpt2_config(options: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    from modelforge.models.gpt import gpt_config

    config = gpt_config(vocab_size, options)
    if config.rope:
        raise HFExportError(
            "model.rope: GPT-2 uses learned positions; this run has rotary ones (the default): "
            "train with model.rope: false to export it as GPT-2"
        )
    if not config.bias:
        raise HFExportError("model.bias: GPT-2 has biases in every layer; a bias-free model cannot be exported")
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": vocab_size,
        "n_positions": config.context,
        "n_ctx": config.context,
        "n_embd": config.width,
        "n_layer": config.layers,
        "n_head": config.heads,
        "n_inner": 4 * config.width,
        "activation_function": "gelu",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "bos_token_id": None,
        "eos_token_id": None,
        "torch_dtype": "float32",
    }


def gpt2_state_dict(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """Our GPT weights under GPT-2 names; GPT-2's Conv1D stores (in, out), so linears are transposed."""
    out = {
        "transformer.wte.weight": state["token_embedding.weight"],
        "transformer.wpe.weight": state["position_embedding.weight"],
        "transformer.ln_f.weight": state["norm.weight"],
        "transformer.ln_f.bias": state["norm.bias"],
    }
    names = {
        "norm1": "ln_1",
        "norm2": "ln_2",
        "attention.qkv": "attn.c_attn",
        "attention.proj": "attn.c_proj",
        "mlp.fc": "mlp.c_fc",
        "mlp.proj": "mlp.c_proj",
    }
    for layer in range(layers):
        for ours, theirs in names.items():
            weight = state[f"blocks.{layer}.{ours}.weight"]
            out[f"transformer.h.{layer}.{theirs}.weight"] = weight if ours.startswith("norm") else weight.t()
            out[f"transformer.h.{layer}.{theirs}.bias"] = state[f"blocks.{layer}.{ours}.bias"]
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def export_gpt_to_hf(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the GPT run at `run_dir` as a Hugging Face GPT-2 folder at `out_dir`; returns it."""
    from safetensors.torch import save_file

    from modelforge.files import atomic_write_json, atomic_write_text
    from modelforge.run import staged_run_directory
    from modelforge.text.run import load_language_model_run

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run = load_language_model_run(run_dir)
    config = gpt2_config({"rope": False, **run.model_info["options"]}, run.model_info["vocab_size"])  # see text/run.py
    weights = gpt2_state_dict(run.model.state_dict(), run.model.config.layers)
    tokenizer = run.tokenizer.to_json()
    with staged_run_directory(out_dir) as dest:  # the folder appears only when complete
        atomic_write_json(dest / "config.json", config)
        save_file(weights, str(dest / "model.safetensors"), metadata={"format": "pt"})
        atomic_write_json(dest / "modelforge_tokenizer.json", tokenizer)
        if tokenizer["type"] == "bpe":
            atomic_write_text(dest / "tokenizer.json", json.dumps(tokenizer["tokenizer"]))
    return out_dir
