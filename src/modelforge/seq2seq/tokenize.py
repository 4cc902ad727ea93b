"""Tokenizers of one side of a seq2seq task, trained on the run's own training text, saved in the run.

Registered by name (`seq2seq.source_tokenizer` / `target_tokenizer`):
  bpe      byte-level BPE (`tokenizers`): any text encodes; decode(encode(s)) == s exactly
  unigram  byte-level unigram LM (`tokenizers`): the same guarantees, another segmentation
  char     one id per character seen in training; unseen characters become <unk>
  symbols  space-separated symbols (phonemes: "HH AH0 L OW1"); exact for single-spaced text

Ids 0..3 are <pad>, <s>, </s>, <unk> in every vocabulary (modelforge.models.seq2seq reads them so).
`encode` returns ids without <s>/</s>; `decode` drops the special ids.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from modelforge.errors import DataError, NotFittedError
from modelforge.files import atomic_write_json
from modelforge.models.seq2seq import UNK
from modelforge.registry import Registry

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


class SideTokenizer(Protocol):
    name: str

    @property
    def vocab_size(self) -> int: ...

    def fit(self, texts: Iterable[str]) -> SideTokenizer: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass
class SubwordTokenizer:
    """Byte-level BPE or unigram through `tokenizers`, the four specials first."""

    name: str = "bpe"
    vocab_target: int = 8000
    tokenizer_: Any = None

    @property
    def vocab_size(self) -> int:
        return int(self._fitted().get_vocab_size())

    def _fitted(self) -> Any:
        if self.tokenizer_ is None:
            raise NotFittedError(f"{self.name} tokenizer: call fit(texts) before encode/decode")
        return self.tokenizer_

    def fit(self, texts: Iterable[str]) -> SubwordTokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if self.name == "bpe":
            tokenizer = Tokenizer(models.BPE())
            trainer: Any = trainers.BpeTrainer(
                vocab_size=self.vocab_target, special_tokens=list(SPECIALS), initial_alphabet=alphabet,
                show_progress=False,
            )  # fmt: skip
        else:
            tokenizer = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(
                vocab_size=self.vocab_target, special_tokens=list(SPECIALS), initial_alphabet=alphabet,
                unk_token="<unk>", show_progress=False,
            )  # fmt: skip
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.train_from_iterator(texts, trainer=trainer)
        ids = [tokenizer.token_to_id(token) for token in SPECIALS]
        assert ids == [0, 1, 2, 3], f"specials got ids {ids}"
        self.tokenizer_ = tokenizer
        return self

    def encode(self, text: str) -> list[int]:
        return list(self._fitted().encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._fitted().decode([int(i) for i in ids if i >= len(SPECIALS)], skip_special_tokens=False))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.name, "tokenizer": json.loads(self._fitted().to_str())}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubwordTokenizer:
        from tokenizers import Tokenizer

        return cls(name=data["type"], tokenizer_=Tokenizer.from_str(json.dumps(data["tokenizer"])))


@dataclass
class UnitTokenizer:
    """Characters (`char`) or space-separated symbols (`symbols`), most frequent first after the specials."""

    name: str = "char"
    units_: list[str] | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def _split(self, text: str) -> list[str]:
        return list(text) if self.name == "char" else text.split()

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self._fitted())

    def _fitted(self) -> list[str]:
        if self.units_ is None:
            raise NotFittedError(f"{self.name} tokenizer: call fit(texts) before encode/decode")
        return self.units_

    def fit(self, texts: Iterable[str]) -> UnitTokenizer:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self._split(text))
        return self._with_units(sorted(counts, key=lambda unit: (-counts[unit], unit)))

    def _with_units(self, units: list[str]) -> UnitTokenizer:
        self.units_ = units
        self._index = {unit: i + len(SPECIALS) for i, unit in enumerate(units)}
        return self

    def encode(self, text: str) -> list[int]:
        self._fitted()
        return [self._index.get(unit, UNK) for unit in self._split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        units = self._fitted()
        pieces = [units[int(i) - len(SPECIALS)] if i >= len(SPECIALS) else "\ufffd" for i in ids if int(i) >= UNK]
        return ("" if self.name == "char" else " ").join(pieces)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.name, "units": self._fitted()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitTokenizer:
        return cls(name=data["type"])._with_units(list(data["units"]))


TOKENIZERS: Registry[Callable[[int], SideTokenizer]] = Registry("seq2seq tokenizer")
TOKENIZERS.add("bpe", lambda vocab: SubwordTokenizer("bpe", vocab))
TOKENIZERS.add("unigram", lambda vocab: SubwordTokenizer("unigram", vocab))
TOKENIZERS.add("char", lambda vocab: UnitTokenizer("char"))
TOKENIZERS.add("symbols", lambda vocab: UnitTokenizer("symbols"))
LOADERS: dict[str, Callable[[dict[str, Any]], SideTokenizer]] = {
    "bpe": SubwordTokenizer.from_json,
    "unigram": SubwordTokenizer.from_json,
    "char": UnitTokenizer.from_json,
    "symbols": UnitTokenizer.from_json,
}


def fit_tokenizer(name: str, vocab: int, texts: Sequence[str]) -> SideTokenizer:
    return TOKENIZERS.get(name)(vocab).fit(texts)


def save_side_tokenizer(tokenizer: SideTokenizer, path: Path) -> None:
    atomic_write_json(path, tokenizer.to_json())


def load_side_tokenizer(path: Path) -> SideTokenizer:
    if not path.is_file():
        raise DataError(f"{path}: tokenizer file not found")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("type") not in LOADERS:
        raise DataError(f"{path}: unknown tokenizer type {data.get('type')!r}; known: {', '.join(LOADERS)}")
    return LOADERS[data["type"]](data)
