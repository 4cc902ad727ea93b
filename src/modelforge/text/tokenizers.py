"""Tokenizers for language modeling, registered by name: `char` and byte-level `bpe`.

Each is trained on the corpus (`fit`), then `encode`s text to ids and `decode`s ids back
exactly: decode(encode(s)) == s for any text the tokenizer can represent (any text at all
for `bpe`; text made of the training characters for `char`). They save to one JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from modelforge.errors import DataError, NotFittedError
from modelforge.registry import Registry


class Tokenizer(Protocol):
    name: str

    @property
    def vocab_size(self) -> int: ...

    def fit(self, text: str) -> Tokenizer: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


TOKENIZERS: Registry[Callable[..., Tokenizer]] = Registry("tokenizer")
LOADERS: dict[str, Callable[[dict[str, Any]], Tokenizer]] = {}


@dataclass
class CharTokenizer:
    """One id per distinct character of the training text, in code-point order."""

    name: str = "char"
    chars_: list[str] | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def vocab_size(self) -> int:
        return len(self._fitted())

    def _fitted(self) -> list[str]:
        if self.chars_ is None:
            raise NotFittedError("char tokenizer: call fit(text) before encode/decode")
        return self.chars_

    def fit(self, text: str) -> CharTokenizer:
        self.chars_ = sorted(set(text))
        self._index = {c: i for i, c in enumerate(self.chars_)}
        return self

    def encode(self, text: str) -> list[int]:
        self._fitted()
        try:
            return [self._index[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self._index})
            shown = ", ".join(repr(c) for c in unknown[:5])
            raise DataError(
                f"text has {len(unknown)} character(s) outside the char vocabulary ({shown}); "
                "use only characters of the training text"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        chars = self._fitted()
        return "".join(chars[int(i)] for i in ids)

    def to_json(self) -> dict[str, Any]:
        return {"type": "char", "chars": self._fitted()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CharTokenizer:
        return cls().fit("".join(data["chars"]))


@dataclass
class BPETokenizer:
    """Byte-level BPE (GPT-2 style) trained with the `tokenizers` library: every text encodes."""

    vocab_size_target: int = 4096
    name: str = "bpe"
    tokenizer_: Any = None

    @property
    def vocab_size(self) -> int:
        return int(self._fitted().get_vocab_size())

    def _fitted(self) -> Any:
        if self.tokenizer_ is None:
            raise NotFittedError("bpe tokenizer: call fit(text) before encode/decode")
        return self.tokenizer_

    @staticmethod
    def _empty() -> Any:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        return tokenizer

    def fit(self, text: str) -> BPETokenizer:
        from tokenizers import pre_tokenizers, trainers

        tokenizer = self._empty()
        trainer = trainers.BpeTrainer(
            vocab_size=self.vocab_size_target,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        lines = text.splitlines(keepends=True)
        chunks = ("".join(lines[i : i + 1000]) for i in range(0, len(lines), 1000))
        tokenizer.train_from_iterator(chunks, trainer=trainer)
        self.tokenizer_ = tokenizer
        return self

    def encode(self, text: str) -> list[int]:
        return list(self._fitted().encode(text).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._fitted().decode([int(i) for i in ids], skip_special_tokens=False))

    def to_json(self) -> dict[str, Any]:
        return {"type": "bpe", "tokenizer": json.loads(self._fitted().to_str())}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BPETokenizer:
        from tokenizers import Tokenizer

        loaded = cls(tokenizer_=Tokenizer.from_str(json.dumps(data["tokenizer"])))
        loaded.vocab_size_target = loaded.vocab_size
        return loaded


TOKENIZERS.add("char", lambda vocab_size=0: CharTokenizer())
TOKENIZERS.add("bpe", lambda vocab_size=4096: BPETokenizer(vocab_size_target=vocab_size))
LOADERS.update(char=CharTokenizer.from_json, bpe=BPETokenizer.from_json)


def build_tokenizer(name: str, vocab_size: int) -> Tokenizer:
    return TOKENIZERS.get(name)(vocab_size=vocab_size)


def tokenizer_from_json(data: dict[str, Any]) -> Tokenizer:
    kind = data.get("type")
    if kind not in LOADERS:
        raise DataError(f"tokenizer JSON: unknown type {kind!r}; known: {', '.join(sorted(LOADERS))}")
    return LOADERS[kind](data)


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> None:
    from modelforge.files import atomic_write_json

    atomic_write_json(path, tokenizer.to_json())


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: tokenizer file not found")
    return tokenizer_from_json(json.loads(path.read_text(encoding="utf-8")))
