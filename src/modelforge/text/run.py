"""A finished language-modeling run, loaded from its directory.

RUN_DIR/
  config.yaml          resolved config
  tokenizer.json       the fitted tokenizer (char or bpe)
  model.safetensors    final weights
  model.json           type "gpt", options, vocab_size, parameters (written last)
  metrics.jsonl        one row per evaluation (step, losses, lr, tokens/s, a text sample)
  eval.json            val_loss, perplexity, tokens_per_second, steps, train_seconds
  environment.json     versions, git commit, host, data hashes, start/end times
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from modelforge.errors import RunError
from modelforge.models.gpt import GPT, gpt_config
from modelforge.run import RunDirectory, read_finished_run
from modelforge.text.tokenizers import Tokenizer, load_tokenizer

LM_REQUIRED_FILES = ("config.yaml", "tokenizer.json", "model.safetensors", "model.json")
MAX_EVAL_TOKENS = 1 << 20


@dataclass
class LanguageModelRun(RunDirectory):
    path: Path
    config: Any
    tokenizer: Tokenizer
    model_info: dict[str, Any]
    model: GPT = field(repr=False)

    @property
    def task(self) -> str:
        return str(self.config.task)

    def evaluate(self, data: str | Path) -> dict[str, Any]:
        """val_loss and perplexity of the model on another text file (all of it, up to 1M tokens)."""
        from modelforge.text.data import read_corpus

        text = read_corpus(str(data), self.config.data.text_column)
        tokens = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        if len(tokens) < 2:
            raise RunError(f"{data}: needs at least 2 tokens to score, got {len(tokens)}")
        loss = sequence_loss(self.model, tokens, self.model.config.context, self.config.train.batch_size)
        return {"split": str(data), "val_loss": loss, "perplexity": math.exp(loss), "tokens": len(tokens)}


@torch.no_grad()
def sequence_loss(model: GPT, tokens: np.ndarray, context: int, batch_size: int = 32) -> float:
    """Mean next-token cross-entropy over non-overlapping windows covering `tokens` (≤ 1M tokens)."""
    model.eval()
    device = next(model.parameters()).device
    tokens = np.asarray(tokens[: MAX_EVAL_TOKENS + 1], dtype=np.int64)
    n_full = (len(tokens) - 1) // context
    starts = list(range(0, n_full * context, context))
    groups = [starts[i : i + batch_size] for i in range(0, n_full, batch_size)]
    if n_full * context < len(tokens) - 1:
        groups.append([n_full * context])  # the shorter last window
    total, count = 0.0, 0
    for group in groups:
        length = min(context, len(tokens) - 1 - group[0])
        rows = torch.from_numpy(np.stack([tokens[s : s + length + 1] for s in group])).to(device)
        logits = model(rows[:, :-1]).float()
        targets = rows[:, 1:].reshape(-1)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, reduction="sum"))
        count += targets.numel()
    return total / max(count, 1)


def load_language_model_run(path: str | Path) -> LanguageModelRun:
    """Rebuild config, tokenizer and GPT from a language-modeling run directory."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: run directory not found")
    config, info = read_finished_run(path, LM_REQUIRED_FILES)
    tokenizer = load_tokenizer(path / "tokenizer.json")
    # runs written before rotary positions became the default recorded only the options the config set
    model = GPT(gpt_config(info["vocab_size"], {"rope": False, **info["options"]}))
    try:
        state = load_file(str(path / "model.safetensors"))
        state.setdefault("head.weight", state["token_embedding.weight"])  # tied: stored once
        model.load_state_dict(state)
    except (RuntimeError, OSError, KeyError) as exc:
        raise RunError(f"{path / 'model.safetensors'}: weights do not load ({str(exc).splitlines()[0]})") from None
    model.eval()
    return LanguageModelRun(path, config, tokenizer, info, model)
