"""A seq2seq run as one ONNX graph holding its encoder and its cached decoder step, for decoding in
onnxruntime (`modelforge export RUN --format onnx`). The two halves share no inputs, so one file
serves both calls; feed the half you do not want a 1-token stand-in (`OnnxTranslator` does).

    encoder half   source (batch, src) int64 → memory_keys, memory_values (layers, batch, heads, src,
                   head_dim) float32: each decoder layer's cross-attention keys/values; memory_mask
                   (batch, 1, 1, src) bool
    decoder step   tokens (batch) int64, position () int64, memory_keys, memory_values, memory_mask,
                   past_keys, past_values (layers, batch, heads, past, head_dim; past = 0 to start)
                   → logits (batch, vocab), keys, values (layers, batch, heads, past + 1, head_dim)

Parity: greedy decoding of held-out sources through the graph against the eager model's logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from modelforge.errors import ModelforgeError
from modelforge.export.parity import Parity
from modelforge.models.seq2seq import BOS, EOS, Seq2SeqTransformer

INPUTS = ["source", "tokens", "position", "memory_keys", "memory_values", "memory_mask", "past_keys", "past_values"]
OUTPUTS = ["encoded_keys", "encoded_values", "encoded_mask", "logits", "keys", "values"]
TOLERANCE = 1e-3
PARITY_ROWS = 16


class EncoderAndStep(nn.Module):
    """The model's encoder and one cached decoder step as plain tensor functions (traceable)."""

    def __init__(self, model: Seq2SeqTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        source: torch.Tensor,
        tokens: torch.Tensor,
        position: torch.Tensor,
        memory_keys: torch.Tensor,
        memory_values: torch.Tensor,
        memory_mask: torch.Tensor,
        past_keys: torch.Tensor,
        past_values: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        model = self.model
        memory, encoded_mask = model.encode(source)
        pairs = [layer.cross_attention.keys_values(memory) for layer in model.decoder]
        encoded_keys, encoded_values = torch.stack([k for k, _ in pairs]), torch.stack([v for _, v in pairs])

        y = model.target_embedding(tokens[:, None]) * model.scale + model.positions[position][None, None, :]
        keys, values = [], []
        for index, layer in enumerate(model.decoder):
            h = layer.norm1(y)
            k, v = layer.self_attention.keys_values(h)
            k, v = torch.cat([past_keys[index], k], dim=2), torch.cat([past_values[index], v], dim=2)
            y = y + layer.self_attention.attend(h, k, v, None, False)
            cross = layer.cross_attention
            queries = cross.split(cross.query(layer.norm2(y)))
            mixed = F.scaled_dot_product_attention(
                queries, memory_keys[index], memory_values[index], attn_mask=memory_mask
            )
            y = y + cross.out(mixed.transpose(1, 2).reshape(y.shape))
            y = y + layer.ffn(layer.norm3(y))
            keys.append(k)
            values.append(v)
        logits = model.head(model.decoder_norm(y))[:, 0]
        return encoded_keys, encoded_values, encoded_mask, logits, torch.stack(keys), torch.stack(values)


def shapes(model: Seq2SeqTransformer) -> tuple[int, int, int]:
    config = model.config
    return config.decoder_layers, config.heads, config.width // config.heads


def empty_cache(model: Seq2SeqTransformer, batch: int, length: int = 0) -> np.ndarray:
    layers, heads, head_dim = shapes(model)
    return np.zeros((layers, batch, heads, length, head_dim), dtype=np.float32)


class OnnxTranslator:
    """Greedy decoding through the exported graph with numpy (what another runtime would do)."""

    def __init__(self, session: Any, model: Seq2SeqTransformer) -> None:
        self.session, self.model = session, model

    def encode(self, source: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        batch = source.shape[0]
        stand_in = self.step_feeds(np.full(batch, BOS), 0, *self.empty_memory(batch))
        feeds = {**stand_in, "source": source}
        keys, values, mask = self.session.run(OUTPUTS[:3], feeds)
        return keys, values, mask

    def empty_memory(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        empty = empty_cache(self.model, batch, 1)
        return empty, empty, np.ones((batch, 1, 1, 1), dtype=bool)

    def step_feeds(
        self, tokens: np.ndarray, position: int, keys: np.ndarray, values: np.ndarray, mask: np.ndarray,
        past: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        batch = tokens.shape[0]
        past_keys, past_values = past or (empty_cache(self.model, batch), empty_cache(self.model, batch))
        return {
            "source": np.full((1, 1), EOS, dtype=np.int64),
            "tokens": tokens.astype(np.int64),
            "position": np.array(position, dtype=np.int64),
            "memory_keys": keys,
            "memory_values": values,
            "memory_mask": mask,
            "past_keys": past_keys,
            "past_values": past_values,
        }

    def greedy_logits(self, source: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The logits of every step and the tokens chosen, greedy, `steps` steps."""
        keys, values, mask = self.encode(source)
        tokens = np.full(source.shape[0], BOS, dtype=np.int64)
        past = None
        all_logits, chosen = [], []
        for position in range(steps):
            feeds = self.step_feeds(tokens, position, keys, values, mask, past)
            logits, past_keys, past_values = self.session.run(OUTPUTS[3:], feeds)
            past = (past_keys, past_values)
            tokens = logits.argmax(-1)
            all_logits.append(logits)
            chosen.append(tokens)
        return np.stack(all_logits, 1), np.stack(chosen, 1)


def export_seq2seq_onnx(model: Seq2SeqTransformer, sources: torch.Tensor, dest: Path) -> Parity:
    """Write `dest` from an eval-mode model; parity: greedy decoding of `sources` (batch, src) through
    the graph against the eager model's step logits along the same tokens."""
    from modelforge.export.onnx import OPSET, exporting, onnx_session

    model = model.eval()
    wrapper = EncoderAndStep(model).eval()
    layers, heads, head_dim = shapes(model)
    example = (
        sources[:2],
        torch.full((2,), BOS, dtype=torch.long),
        torch.tensor(3),
        torch.zeros(layers, 2, heads, sources.shape[1], head_dim),
        torch.zeros(layers, 2, heads, sources.shape[1], head_dim),
        torch.ones(2, 1, 1, sources.shape[1], dtype=torch.bool),
        torch.zeros(layers, 2, heads, 3, head_dim),
        torch.zeros(layers, 2, heads, 3, head_dim),
    )
    axes = {
        "source": {0: "source_batch", 1: "source_length"},
        "tokens": {0: "batch"},
        "memory_keys": {1: "batch", 3: "memory_length"},
        "memory_values": {1: "batch", 3: "memory_length"},
        "memory_mask": {0: "batch", 3: "memory_length"},
        "past_keys": {1: "batch", 3: "past"},
        "past_values": {1: "batch", 3: "past"},
        "encoded_keys": {1: "source_batch", 3: "source_length"},
        "encoded_values": {1: "source_batch", 3: "source_length"},
        "encoded_mask": {0: "source_batch", 3: "source_length"},
        "logits": {0: "batch"},
        "keys": {1: "batch", 3: "length"},
        "values": {1: "batch", 3: "length"},
    }
    with exporting(), torch.no_grad():
        torch.onnx.export(
            wrapper, example, str(dest), input_names=INPUTS, output_names=OUTPUTS, dynamic_axes=axes,
            opset_version=OPSET, dynamo=False,
        )  # fmt: skip
    graph = OnnxTranslator(onnx_session(dest), model)
    steps = 8
    logits, tokens = graph.greedy_logits(sources.numpy(), steps)
    with torch.no_grad():
        target_in = torch.cat([torch.full((len(sources), 1), BOS), torch.from_numpy(tokens[:, :-1])], dim=1)
        eager = model(sources, target_in).numpy()
    return Parity(len(sources), float(np.abs(eager - logits).max()), TOLERANCE, f"{steps} greedy steps")


def export_seq2seq_run(run_dir: Path, dest: Path) -> Parity:
    """The run's model, checked on up to PARITY_ROWS of its held-out sources."""
    from modelforge.seq2seq.data import split_pairs
    from modelforge.seq2seq.run import encode_source, load_seq2seq_run, pad_rows, settings_of

    run = load_seq2seq_run(run_dir)
    if run.model_info.get("quantization"):
        raise ModelforgeError(f"{run_dir}: an int8 run; export the float run it was compressed from")
    settings = settings_of(run.config)
    try:
        _, valid, test = split_pairs(run.config.data, run.config.seed)
        texts = (test or valid).sources[:PARITY_ROWS]
    except (ModelforgeError, OSError):  # the data moved: the graph is still checked, on made-up ids
        texts = []
    limit = settings.max_source_tokens
    rows = [encode_source(run.source_tokenizer, t, limit) for t in texts if len(t) < limit] or [[4, 5, 6, EOS]]
    return export_seq2seq_onnx(run.model, pad_rows(rows), dest)


def load_onnx_translator(run_dir: Path, threads: int | None = None) -> Any:
    raise ModelforgeError(
        f"{run_dir}: predict --engine onnx is not built for seq2seq runs; use --engine torch "
        "(the exported graph is for other runtimes: see modelforge.seq2seq.onnx)"
    )
