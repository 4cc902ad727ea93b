"""Encoder-decoder transformer for sequence to sequence (translation, grapheme-to-phoneme).

Pre-LN blocks (norm → attention/MLP → residual), attention through `scaled_dot_product_attention`,
sinusoidal positions, optional tied decoder embedding/output and shared source/target embeddings.
The decoder decodes one token at a time against a `DecoderCache`: each layer's self-attention keys
and values grow by one position a step, the cross-attention keys and values of the encoder output are
computed once. `decode_step` with a cache gives the same logits as `forward` on the whole prefix.

Token ids 0..3 are pad, bos, eos and unk on both sides (modelforge.seq2seq.tokenize).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from modelforge.errors import ConfigError
from modelforge.models.attention import attention
from modelforge.models.registry import register_model

PAD, BOS, EOS, UNK = 0, 1, 2, 3


@dataclass(frozen=True)
class Seq2SeqSpec:
    """What a seq2seq model is built for: the two vocabulary sizes."""

    source_vocab: int
    target_vocab: int


@dataclass(frozen=True)
class Seq2SeqConfig:
    source_vocab: int
    target_vocab: int
    width: int = 256
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    ffn: int = 1024
    dropout: float = 0.1
    max_positions: int = 512
    tie_output: bool = True  # decoder input embedding = output projection
    share_embeddings: bool = False  # one embedding for source and target (needs a shared vocabulary)


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table


class Attention(nn.Module):
    """Multi-head attention; queries from `x`, keys/values from `context` (self-attention: context is x).
    No dropout on the attention weights (fairseq's default): dropout sits on the residual branches."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.key_value(context).chunk(2, dim=-1)
        return self.split(keys), self.split(values)

    def attend(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None, causal: bool
    ) -> torch.Tensor:
        q = self.split(self.query(x))
        y = attention(q, keys, values, attn_mask=mask, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(x.shape))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        return self.attend(x, *self.keys_values(context), mask, causal)


class FeedForward(nn.Sequential):
    """Linear → GELU → Linear; no dropout inside (a CPU's random numbers cost ~10 % of a step each)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))


class EncoderLayer(nn.Module):
    def __init__(self, c: Seq2SeqConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(c.width), nn.LayerNorm(c.width)
        self.attention = Attention(c.width, c.heads)
        self.ffn = FeedForward(c.width, c.ffn)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attention(h, h, mask))
        return x + self.drop(self.ffn(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, c: Seq2SeqConfig) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(c.width), nn.LayerNorm(c.width), nn.LayerNorm(c.width)
        self.self_attention = Attention(c.width, c.heads)
        self.cross_attention = Attention(c.width, c.heads)
        self.ffn = FeedForward(c.width, c.ffn)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(y)
        y = y + self.drop(self.self_attention(h, h, causal=True))
        y = y + self.drop(self.cross_attention(self.norm2(y), memory, memory_mask))
        return y + self.drop(self.ffn(self.norm3(y)))

    def step(self, y: torch.Tensor, cache: LayerCache, memory_mask: torch.Tensor) -> torch.Tensor:
        """One new position `y` (B × 1 × W) against the cached keys/values of the earlier ones."""
        h = self.norm1(y)
        keys, values = self.self_attention.keys_values(h)
        cache.keys = keys if cache.keys is None else torch.cat([cache.keys, keys], dim=2)
        cache.values = values if cache.values is None else torch.cat([cache.values, values], dim=2)
        y = y + self.self_attention.attend(h, cache.keys, cache.values, None, False)
        y = y + self.cross_attention.attend(self.norm2(y), cache.memory_keys, cache.memory_values, memory_mask, False)
        return y + self.ffn(self.norm3(y))


@dataclass
class LayerCache:
    memory_keys: torch.Tensor
    memory_values: torch.Tensor
    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None

    def select(self, rows: torch.Tensor, memory: bool = True) -> None:
        """Keep rows `rows` (beam search: the beams that survived, possibly repeated). `memory=False`
        leaves the encoder side alone: right when each row is replaced by a row of the same source."""
        if memory:
            self.memory_keys, self.memory_values = self.memory_keys[rows], self.memory_values[rows]
        if self.keys is not None and self.values is not None:
            self.keys, self.values = self.keys[rows], self.values[rows]


@dataclass
class DecoderCache:
    """The decoder's state while decoding: per-layer caches, the source mask and the next position."""

    layers: list[LayerCache]
    memory_mask: torch.Tensor
    position: int = 0
    memory: torch.Tensor | None = field(default=None, repr=False)

    def select(self, rows: torch.Tensor, memory: bool = True) -> None:
        for layer in self.layers:
            layer.select(rows, memory)
        if memory:
            self.memory_mask = self.memory_mask[rows]
            if self.memory is not None:
                self.memory = self.memory[rows]


class Seq2SeqTransformer(nn.Module):
    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        c = self.config = config
        self.source_embedding = nn.Embedding(c.source_vocab, c.width, padding_idx=PAD)
        self.target_embedding = (
            self.source_embedding if c.share_embeddings else nn.Embedding(c.target_vocab, c.width, padding_idx=PAD)
        )
        self.register_buffer("positions", sinusoidal_positions(c.max_positions, c.width), persistent=False)
        self.encoder = nn.ModuleList(EncoderLayer(c) for _ in range(c.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(c) for _ in range(c.decoder_layers))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(c.width), nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.target_vocab, bias=False)
        self.drop = nn.Dropout(c.dropout)
        self.apply(self._init_weights)
        if c.tie_output:
            self.head.weight = self.target_embedding.weight
        self.scale = math.sqrt(c.width)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=module.embedding_dim**-0.5)
            nn.init.zeros_(module.weight[PAD])

    def _embed(self, embedding: nn.Embedding, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        length = tokens.shape[1]
        if start + length > self.config.max_positions:
            raise ValueError(f"sequence of {start + length} tokens is longer than max_positions")
        return self.drop(embedding(tokens) * self.scale + self.positions[start : start + length])

    def encode(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output (B × S × W) and the attention mask of the source (B × 1 × 1 × S, True = a token)."""
        mask = (source != PAD)[:, None, None, :]
        x = self._embed(self.source_embedding, source)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.encoder_norm(x), mask

    def decode(self, target_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits for every position of `target_in` (teacher forcing, or decoding by recomputation)."""
        y = self._embed(self.target_embedding, target_in)
        for layer in self.decoder:
            y = layer(y, memory, mask)
        return self.head(self.decoder_norm(y))  # type: ignore[no-any-return]

    def forward(self, source: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        memory, mask = self.encode(source)
        return self.decode(target_in, memory, mask)

    @torch.no_grad()
    def cross_attention_weights(self, source: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        """Cross-attention probabilities of every decoder layer (layers × B × heads × T × S), eval mode:
        which source positions each target position read (`modelforge explain`)."""
        memory, mask = self.encode(source)
        y = self._embed(self.target_embedding, target_in)
        maps = []
        for layer in self.decoder:
            h = layer.norm1(y)
            y = y + layer.self_attention(h, h, causal=True)
            attention = layer.cross_attention
            queries = attention.split(attention.query(layer.norm2(y)))
            keys, values = attention.keys_values(memory)
            scores = queries @ keys.transpose(-1, -2) / math.sqrt(queries.shape[-1])
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            maps.append(weights)
            mixed = (weights @ values).transpose(1, 2).reshape(y.shape)
            y = y + attention.out(mixed)
            y = y + layer.ffn(layer.norm3(y))
        return torch.stack(maps)

    def new_cache(self, memory: torch.Tensor, mask: torch.Tensor) -> DecoderCache:
        layers = [LayerCache(*layer.cross_attention.keys_values(memory)) for layer in self.decoder]
        return DecoderCache(layers, mask, 0, memory)

    def decode_step(self, tokens: torch.Tensor, cache: DecoderCache) -> torch.Tensor:
        """Logits (B × V) of the next token after `tokens` (B), the newest token of each row."""
        y = self._embed(self.target_embedding, tokens[:, None], cache.position)
        for layer, layer_cache in zip(self.decoder, cache.layers, strict=True):
            y = layer.step(y, layer_cache, cache.memory_mask)
        cache.position += 1
        return self.head(self.decoder_norm(y))[:, 0]  # type: ignore[no-any-return]


def seq2seq_config(spec: Seq2SeqSpec, options: dict) -> Seq2SeqConfig:
    """The YAML's model options checked into a Seq2SeqConfig (errors name the key)."""
    config = Seq2SeqConfig(source_vocab=spec.source_vocab, target_vocab=spec.target_vocab, **options)
    for key in ("width", "heads", "encoder_layers", "decoder_layers", "ffn", "max_positions"):
        if getattr(config, key) < 1:
            raise ConfigError(f"model.{key}: must be >= 1, got {getattr(config, key)}")
    if config.width % config.heads or config.width % 2:
        raise ConfigError(f"model.width: {config.width} must be even and divisible by model.heads ({config.heads})")
    if not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"model.dropout: must be in [0, 1), got {config.dropout}")
    if config.share_embeddings and spec.source_vocab != spec.target_vocab:
        raise ConfigError("model.share_embeddings: needs one vocabulary for both sides (seq2seq.shared_vocab: true)")
    return config


@register_model(
    "seq2seq_transformer",
    accepts=("token pairs",),
    description="pre-LN encoder-decoder transformer with cross-attention (task seq2seq; output = target vocab)",
)
def seq2seq_transformer(
    spec: Seq2SeqSpec,
    output_dim: int,
    *,
    width: int = 256,
    heads: int = 4,
    encoder_layers: int = 3,
    decoder_layers: int = 3,
    ffn: int = 1024,
    dropout: float = 0.1,
    max_positions: int = 512,
    tie_output: bool = True,
    share_embeddings: bool = False,
) -> Seq2SeqTransformer:
    """`spec` gives both vocabularies; `output_dim` is the target vocabulary (equal to spec's)."""
    options = {"width": width, "heads": heads, "encoder_layers": encoder_layers, "decoder_layers": decoder_layers}
    options |= {"ffn": ffn, "dropout": dropout, "max_positions": max_positions}
    options |= {"tie_output": tie_output, "share_embeddings": share_embeddings}
    return Seq2SeqTransformer(seq2seq_config(spec, options))
