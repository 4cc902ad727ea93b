"""What `modelforge benchmark` times on a language-modeling (GPT) run.

    modelforge benchmark runs/shakespeare --engine all   # torch and onnx (after `export --format onnx`)

One request is one decode step: the next token's logits for one sequence whose short prompt
(`PROMPT_TOKENS` tokens of the run's own text, capped at half the context) already sits in the
KV cache, so the step costs one position's work, as each token of `generate` does. A batch is 64
such prompts run through the model at once for their next-token logits (the prompt pass that
starts 64 generations). The engine is the run's eager GPT (its `KVCache`, reset to the prompt
before every step) or its exported graph in onnxruntime (`OnnxLanguageModel`, the cache as graph
inputs), which stands in for the module with the same `prompt`/`step` calls as `generate --engine onnx`.
"""

from __future__ import annotations

from typing import Any

import torch

from modelforge.errors import ModelforgeError
from modelforge.inference import Workload
from modelforge.models.gpt import GPT

PROMPT_TOKENS = 16


def language_model_workload(run: Any, batch_rows: int = 64) -> Workload:
    """One decode step after a short prompt (batch 1), and `batch_rows` prompts' next-token logits."""
    model = run.model
    eager = isinstance(model, GPT)  # else the exported graph standing in for the module (OnnxLanguageModel)
    context = model.config.context if eager else model.context
    prompts = prompt_windows(run, batch_rows, max(1, min(PROMPT_TOKENS, context // 2)))
    return _eager(model, prompts) if eager else _graph(model, prompts)


def _eager(model: GPT, prompts: torch.Tensor) -> Workload:
    model.eval()
    length = prompts.shape[1]
    cache = model.new_cache(1)
    with torch.no_grad():
        model(prompts[:1], cache)  # the prompt fills positions 0 … length − 1
    token = prompts[:1, -1:]

    def one(_: int) -> torch.Tensor:
        cache.length = length  # every step writes the same position: the same work each call
        with torch.no_grad():
            return model(token, cache)

    def batch(_: int) -> torch.Tensor:
        with torch.no_grad():
            return model(prompts)[:, -1]

    return Workload(_row(length), one, batch, len(prompts))


def _graph(graph: Any, prompts: torch.Tensor) -> Workload:
    tokens = prompts.numpy()
    _, cache = graph.prompt(tokens[:1])
    token = tokens[:1, -1:]
    return Workload(
        _row(tokens.shape[1]), lambda _: graph.step(token, cache), lambda _: graph.prompt(tokens)[0][:, -1], len(tokens)
    )


def _row(length: int) -> str:
    return f"one token decoded after a {length}-token prompt in the KV cache; batch: prompts' next-token logits"


def prompt_windows(run: Any, rows: int, length: int) -> torch.Tensor:
    """`rows` prompts of `length` tokens from the run's training text (random ids when it is gone)."""
    from modelforge.text.data import read_corpus

    vocab = int(run.model_info["vocab_size"])
    train = run.config.data.train
    try:
        text = read_corpus(train if isinstance(train, list) else str(train), run.config.data.text_column)
        ids = torch.tensor(run.tokenizer.encode(text[: 40 * length * rows]), dtype=torch.long)
    except (ModelforgeError, OSError):  # the corpus moved or was deleted: the timing does not depend on it
        ids = torch.zeros(0, dtype=torch.long)
    if len(ids) < length + rows:
        return torch.randint(0, vocab, (rows, length), generator=torch.Generator().manual_seed(0))
    starts = torch.linspace(0, len(ids) - length, rows).long()
    return torch.stack([ids[s : s + length] for s in starts])
