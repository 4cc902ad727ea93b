"""A GPT run as an ONNX graph with its key/value cache as inputs and outputs, for step-by-step
decoding in onnxruntime: `modelforge export RUN --format onnx` on a language-modeling run.

    inputs   tokens (batch, time) int64
             past_keys, past_values (layers, batch, heads, past, head_dim) float32; past = 0 to start
    outputs  logits (batch, time, vocab)
             keys, values (layers, batch, heads, past + time, head_dim): the next call's past

The new tokens sit at positions past … past + time − 1 and attend to every cached position and
causally among themselves, so one graph runs both the prompt (past = 0) and each new token
(time = 1). `OnnxLanguageModel` drives it with numpy and is checked against the eager GPT.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from modelforge.export.onnx import OPSET, compare, exporting, onnx_session
from modelforge.export.parity import Parity
from modelforge.models.gpt import GPT, apply_rotary
from modelforge.text.generate import Decoder, Decoding, GenerationError, Generator, Sampling, pick_token

GRAPH_INPUTS = ["tokens", "past_keys", "past_values"]
GRAPH_OUTPUTS = ["logits", "keys", "values"]


class GPTWithPast(nn.Module):
    """The GPT's forward with the cache as tensors in and out (what an exporter can trace)."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, tokens: torch.Tensor, past_keys: torch.Tensor, past_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        model, config = self.model, self.model.config
        past, time = past_keys.shape[3], tokens.shape[1]
        positions = torch.arange(time, device=tokens.device) + past
        x = model.token_embedding(tokens)
        rotary = None
        if model.position_embedding is not None:
            x = x + model.position_embedding(positions)
        else:
            rotary = (model.rotary_cos[positions], model.rotary_sin[positions])
        # query i (at position past + i) sees keys 0 … past + i
        seen = torch.arange(past + time, device=tokens.device)[None, :] <= positions[:, None]
        keys, values = [], []
        for layer, block in enumerate(model.blocks):
            attention, h = block.attention, block.norm1(x)
            q, k, v = attention.qkv(h).split(config.width, dim=2)
            shape = (h.shape[0], h.shape[1], config.heads, config.width // config.heads)
            q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
            if rotary is not None:
                q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
            k, v = torch.cat([past_keys[layer], k], dim=2), torch.cat([past_values[layer], v], dim=2)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=seen)
            x = x + attention.proj(y.transpose(1, 2).reshape(h.shape))
            x = x + block.mlp(block.norm2(x))
            keys.append(k)
            values.append(v)
        return model.head(model.norm(x)), torch.stack(keys), torch.stack(values)


def empty_past(model: GPT, batch: int, length: int = 0) -> torch.Tensor:
    config = model.config
    return torch.zeros(config.layers, batch, config.heads, length, config.width // config.heads)


def export_gpt_onnx(model: GPT, prompts: torch.Tensor, dest: Path) -> Parity:
    """Write `dest` from an eval-mode GPT; parity: the graph's prompt pass and step-by-step decode
    of `prompts` (batch, time) against the eager full-sequence logits, at batches 1 and 7."""
    wrapper = GPTWithPast(model).eval()
    time = prompts.shape[1]
    example = (prompts[:2, time // 2 :], empty_past(model, 2, time // 2), empty_past(model, 2, time // 2))
    axes = {
        "tokens": {0: "batch", 1: "time"},
        "past_keys": {1: "batch", 3: "past"},
        "past_values": {1: "batch", 3: "past"},
        "logits": {0: "batch", 1: "time"},
        "keys": {1: "batch", 3: "length"},
        "values": {1: "batch", 3: "length"},
    }
    with exporting(), torch.no_grad():
        torch.onnx.export(
            wrapper,
            example,
            str(dest),
            input_names=GRAPH_INPUTS,
            output_names=GRAPH_OUTPUTS,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    graph = OnnxLanguageModel(onnx_session(dest), model.config.context)
    return decoding_parity(model, graph, prompts)


def decoding_parity(model: GPT, graph: OnnxLanguageModel, prompts: torch.Tensor) -> Parity:
    """The graph fed a prompt (first half) then one token at a time must give the eager logits at
    every position, for batches of 1 and 7 rows and a 1-token prompt."""
    checks = []
    time = prompts.shape[1]
    for rows, start in ((1, time // 2), (7, time // 2), (7, 1)):
        tokens = prompts[:rows]
        with torch.no_grad():
            expected = model(tokens).float().numpy()
        logits, cache = graph.prompt(tokens[:, :start].numpy())
        steps = [logits]
        for position in range(start, time):
            logits, cache = graph.step(tokens[:, position : position + 1].numpy(), cache)
            steps.append(logits)
        checks.append(compare(expected, np.concatenate(steps, axis=1)))
    worst = max(checks, key=lambda parity: parity.max_abs_diff)
    rows = sum(parity.rows for parity in checks)
    return Parity(rows, worst.max_abs_diff, worst.tolerance, "prompt, then one token a step, batches of 1+7+7")


@dataclass
class OnnxCache:
    keys: np.ndarray
    values: np.ndarray

    @property
    def length(self) -> int:
        return int(self.keys.shape[3])


@dataclass
class OnnxLanguageModel:
    """A GPT graph in onnxruntime: `prompt(ids)` then `step(ids, cache)`, logits as numpy."""

    session: Any
    context: int

    def _shape(self) -> tuple[int, int, int]:
        layers, _, heads, _, head_dim = self.session.get_inputs()[1].shape
        return layers, heads, head_dim

    def prompt(self, tokens: np.ndarray) -> tuple[np.ndarray, OnnxCache]:
        layers, heads, head_dim = self._shape()
        empty = np.zeros((layers, len(tokens), heads, 0, head_dim), dtype=np.float32)
        return self.step(tokens, OnnxCache(empty, empty))

    def step(self, tokens: np.ndarray, cache: OnnxCache) -> tuple[np.ndarray, OnnxCache]:
        if cache.length + tokens.shape[1] > self.context:
            raise ValueError(f"{cache.length + tokens.shape[1]} positions exceed the model's context of {self.context}")
        feed = {"tokens": tokens.astype(np.int64), "past_keys": cache.keys, "past_values": cache.values}
        logits, keys, values = self.session.run(None, feed)
        return logits, OnnxCache(keys, values)


# ----------------------------------------------------------------------------- generation in onnxruntime
@dataclass
class OnnxTextGenerator(Generator):
    """`modelforge generate RUN --engine onnx`: the Generator's prompts, sampling and text pieces, with
    each forward pass (the prompt, then one token at a time) run by the exported graph."""

    graph: OnnxLanguageModel | None = None

    def token_ids(
        self,
        prompt_ids: list[int],
        max_new_tokens: int,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        seed: int | None,
    ) -> Iterator[int]:
        assert self.graph is not None
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        history = list(prompt_ids)
        logits, cache = self.graph.prompt(np.array([history]))
        for produced in range(max_new_tokens):
            token = pick_token(torch.from_numpy(logits[0, -1]), temperature, top_k, top_p, generator)
            history.append(token)
            yield token
            if produced + 1 == max_new_tokens:
                break
            if cache.length == self.context:  # full: slide to the last half-context, as the eager Generator
                logits, cache = self.graph.prompt(np.array([history[-max(1, self.context // 2) :]]))
            else:
                logits, cache = self.graph.step(np.array([[token]]), cache)

    def decode_batch(self, slots: int) -> Decoder:
        assert self.graph is not None
        return OnnxDecodeBatch(self.graph, slots)


@dataclass(eq=False)
class OnnxDecodeBatch:
    """`modelforge serve --engine onnx` on a GPT run: up to `slots` generations, each with its own cache.

    The graph attends by position with one past length for the whole batch, so generations at
    different positions cannot share a pass: `step` runs one pass per generation. The tokens equal
    `OnnxTextGenerator.token_ids` for each generation alone (same sampling, same seed).
    """

    graph: OnnxLanguageModel
    slots: int
    active: list[Decoding] = field(default_factory=list)
    caches: dict[int, OnnxCache] = field(default_factory=dict)  # id(decoding) → its cache

    @property
    def has_room(self) -> bool:
        return len(self.active) < self.slots

    def add(self, prompt_ids: list[int], sampling: Sampling) -> tuple[Decoding, int]:
        if sampling.max_new_tokens < 1:
            raise GenerationError(f"max_new_tokens: must be >= 1 to start a generation, got {sampling.max_new_tokens}")
        random = torch.Generator().manual_seed(sampling.seed) if sampling.seed is not None else None
        decoding = Decoding(sampling, len(self.active), list(prompt_ids), 0, random=random)
        logits, cache = self.graph.prompt(np.array([decoding.history]))
        token = decoding.take(torch.from_numpy(logits[0, -1]))
        if not decoding.finished:
            self.caches[id(decoding)] = cache
            self.active.append(decoding)
        return decoding, token

    def step(self) -> list[tuple[Decoding, int | Exception]]:
        out: list[tuple[Decoding, int | Exception]] = []
        for decoding in list(self.active):
            cache = self.caches[id(decoding)]
            if cache.length == self.graph.context:  # full: slide to the last half-context
                window = decoding.history[-max(1, self.graph.context // 2) :]
                logits, cache = self.graph.prompt(np.array([window]))
            else:
                logits, cache = self.graph.step(np.array([decoding.history[-1:]]), cache)
            self.caches[id(decoding)] = cache
            out.append((decoding, decoding.advance(torch.from_numpy(logits[0, -1]))))
            if decoding.finished:
                self.drop(decoding)
        return out

    def drop(self, decoding: Decoding) -> None:
        if decoding in self.active:
            self.active.remove(decoding)
            self.caches.pop(id(decoding), None)


def load_onnx_generator(run_dir: str | Path, threads: int | None = None) -> OnnxTextGenerator:
    """The run's exported model.onnx (a GPT with its KV cache as graph inputs) driving text generation."""
    run, graph = _run_and_graph(run_dir, threads)
    return OnnxTextGenerator(run.model, run.tokenizer, graph=graph)


def load_onnx_language_model_run(run_dir: str | Path, threads: int | None = None) -> Any:
    """The language-modeling run with its exported graph (`OnnxLanguageModel`) in place of the GPT."""
    run, graph = _run_and_graph(run_dir, threads)
    run.model = graph
    return run


def _run_and_graph(run_dir: str | Path, threads: int | None) -> tuple[Any, OnnxLanguageModel]:
    from modelforge.export.onnx import ONNX_FILE
    from modelforge.export.parity import ExportError
    from modelforge.text.run import load_language_model_run

    run_dir = Path(run_dir)
    run = load_language_model_run(run_dir)
    path = run_dir / ONNX_FILE
    if not path.exists():
        raise ExportError(f"{path}: not found; run `modelforge export {run_dir} --format onnx` first")
    return run, OnnxLanguageModel(onnx_session(path, threads), run.model.config.context)
