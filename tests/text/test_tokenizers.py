"""Tokenizers: exact round trips, JSON save/load, clear errors; the token cache is built once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelforge.errors import DataError
from modelforge.text.data import prepare_tokens, read_corpus
from modelforge.text.tokenizers import build_tokenizer, load_tokenizer, save_tokenizer

UNSEEN = "naïve café — 東京 🚀\ttabs\r\nand  double  spaces\n"


def test_char_round_trip_and_json(corpus: Path, tmp_path: Path) -> None:
    text = corpus.read_text(encoding="utf-8")
    tokenizer = build_tokenizer("char", 0).fit(text)
    assert tokenizer.vocab_size == len(set(text))
    assert tokenizer.decode(tokenizer.encode(text)) == text
    save_tokenizer(tokenizer, tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert loaded.encode(text[:500]) == tokenizer.encode(text[:500])


def test_char_rejects_unknown_characters(corpus: Path) -> None:
    tokenizer = build_tokenizer("char", 0).fit(corpus.read_text(encoding="utf-8"))
    with pytest.raises(DataError, match="outside the char vocabulary"):
        tokenizer.encode("ROMEO: 🚀")


def test_bpe_round_trip_on_unseen_text(corpus: Path, tmp_path: Path) -> None:
    text = corpus.read_text(encoding="utf-8")
    tokenizer = build_tokenizer("bpe", 400).fit(text)
    assert 256 < tokenizer.vocab_size <= 400
    for sample in (text[:2000], UNSEEN, " leading space", ""):
        assert tokenizer.decode(tokenizer.encode(sample)) == sample
    assert len(tokenizer.encode(text[:2000])) < 2000 * 0.6  # merges compress English
    save_tokenizer(tokenizer, tmp_path / "bpe.json")
    loaded = load_tokenizer(tmp_path / "bpe.json")
    assert loaded.encode(UNSEEN) == tokenizer.encode(UNSEEN)
    assert loaded.decode(loaded.encode(UNSEEN)) == UNSEEN


def test_token_cache_is_reused_and_split_contiguously(corpus: Path, tmp_path: Path) -> None:
    first = prepare_tokens(str(corpus), tmp_path, "bpe", 300, 0.1)
    again = prepare_tokens(str(corpus), tmp_path, "bpe", 300, 0.1)
    assert not first.reused and again.reused
    assert first.tokens.dtype == np.uint16 and isinstance(again.tokens, np.memmap)
    assert np.array_equal(np.asarray(first.tokens), np.asarray(again.tokens))
    assert len(first.valid) == len(first.tokens) - int(len(first.tokens) * 0.9)
    assert first.tokenizer.decode(np.concatenate([first.train, first.valid]).tolist()) == corpus.read_text()


@pytest.mark.parametrize(("content", "message"), [(b"", "empty"), (b"\x7fELF\x00\x01\x02", "binary")])
def test_bad_text_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_corpus(str(path))
