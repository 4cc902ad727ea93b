"""Language-modeling data: read the corpus, tokenize it once into a memory-mapped token file,
split it contiguously (the last `valid_fraction` is validation), sample random windows.

The token cache lives next to the run directory, in `<runs folder>/.token-cache/<key>/`
(`tokens.bin` uint16 or uint32, `tokenizer.json`, `meta.json`), keyed by the corpus files'
hashes and the tokenizer settings, so a second run on the same text skips tokenization.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelforge.errors import DataError
from modelforge.text.tokenizers import Tokenizer, build_tokenizer, load_tokenizer, save_tokenizer

TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst", ".py", ".html", ".xml", ""}


def read_text_file(path: str | Path) -> str:
    """The whole file as UTF-8 text; empty or binary files are errors that say so."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: text file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the text file is empty")
    if b"\x00" in raw[: 1 << 20]:
        raise DataError(f"{path}: looks like a binary file (NUL bytes), expected UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (undecodable byte at offset {exc.start})") from None


CORPUS_SUFFIXES = {".txt", ".text", ".md", ".rst"}  # the files a corpus folder contributes


def corpus_files(files: str | list[str]) -> list[Path]:
    """The files of data.train: each named file, and for a folder its text files (`CORPUS_SUFFIXES`, sorted)."""
    found: list[Path] = []
    for name in [files] if isinstance(files, str) else files:
        path = Path(name)
        if not path.is_dir():
            found.append(path)
            continue
        texts = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES)
        if not texts:
            raise DataError(f"{path}: no text files ({', '.join(sorted(CORPUS_SUFFIXES))}) in the folder")
        found.extend(texts)
    return found


def recognizes_corpus_folder(path: Path) -> bool:
    """For `modelforge init` with no --task: a folder of text files and no subfolders (a book in chapters)."""
    if not path.is_dir():
        return False
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    return bool(entries) and all(p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES for p in entries)


def read_corpus(files: str | list[str], text_column: str | None = None) -> str:
    """Concatenate text files (or a table's text column, one row per line) into one string; a folder
    gives its text files in name order."""
    parts = []
    for path in corpus_files(files):
        if text_column is not None or path.suffix.lower() not in TEXT_SUFFIXES:
            parts.append(_read_text_column(path, text_column))
        else:
            parts.append(read_text_file(path))
    text = "\n".join(parts) if len(parts) > 1 else parts[0]
    if not text.strip():
        raise DataError(f"data.train: no text in {files}")
    return text


def _read_text_column(path: Path, column: str | None) -> str:
    from modelforge.data.readers import read_data
    from modelforge.errors import did_you_mean

    frame = read_data(path)
    if column is None:
        raise DataError(f"{path}: a table needs data.text_column (columns: {', '.join(map(str, frame.columns))})")
    if column not in frame.columns:
        raise DataError(f"data.text_column: {column!r} not in {path}{did_you_mean(column, map(str, frame.columns))}")
    return "\n".join(frame[column].dropna().astype(str))


def corpus_key(files: str | list[str], tokenizer: str, vocab_size: int, text_column: str | None) -> str:
    from modelforge.files import file_sha256

    digest = hashlib.sha256()
    for path in corpus_files(files):
        digest.update(file_sha256(path).encode())
    settings = f"{tokenizer}:{vocab_size if tokenizer == 'bpe' else 0}:{text_column}"
    digest.update(settings.encode())
    return digest.hexdigest()[:20]


@dataclass
class TokenData:
    """Token ids of the whole corpus (memory-mapped) and where validation starts."""

    tokens: np.ndarray
    split_at: int
    tokenizer: Tokenizer
    cache_dir: Path
    reused: bool

    @property
    def train(self) -> np.ndarray:
        return self.tokens[: self.split_at]

    @property
    def valid(self) -> np.ndarray:
        return self.tokens[self.split_at :]


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


def prepare_tokens(
    files: str | list[str],
    cache_root: Path,
    tokenizer_name: str,
    vocab_size: int,
    valid_fraction: float,
    text_column: str | None = None,
) -> TokenData:
    """Tokenize the corpus into `cache_root/<key>/tokens.bin` unless that cache already exists."""
    key = corpus_key(files, tokenizer_name, vocab_size, text_column)
    folder = cache_root / key
    meta_path = folder / "meta.json"
    reused = meta_path.exists()
    if reused:
        meta = json.loads(meta_path.read_text())
        tokenizer = load_tokenizer(folder / "tokenizer.json")
    else:
        text = read_corpus(files, text_column)
        tokenizer = build_tokenizer(tokenizer_name, vocab_size).fit(text)
        ids = np.asarray(tokenizer.encode(text), dtype=token_dtype(tokenizer.vocab_size))
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / ".tokens.bin.tmp"
        ids.tofile(temp)
        temp.replace(folder / "tokens.bin")
        save_tokenizer(tokenizer, folder / "tokenizer.json")
        meta = {"tokens": len(ids), "dtype": np.dtype(ids.dtype).name, "vocab_size": tokenizer.vocab_size}
        from modelforge.files import atomic_write_json

        atomic_write_json(meta_path, meta)  # written last: marks a complete cache entry
    tokens = np.memmap(folder / "tokens.bin", dtype=meta["dtype"], mode="r", shape=(meta["tokens"],))
    split_at = int(len(tokens) * (1 - valid_fraction))
    return TokenData(tokens, split_at, tokenizer, folder, reused)


def check_lengths(data: TokenData, context: int) -> None:
    for name, part in (("training", data.train), ("validation", data.valid)):
        if len(part) <= context + 1:
            raise DataError(
                f"data.train: the {name} part has {len(part)} tokens, fewer than model.context + 2 "
                f"({context + 2}); give more text, a smaller model.context or another data.valid_fraction"
            )


def random_windows(
    tokens: np.ndarray, batch: int, context: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` random windows: inputs (batch, context) and next-token targets, as int64."""
    starts = torch.randint(len(tokens) - context - 1, (batch,), generator=generator).numpy()
    rows = np.stack([tokens[s : s + context + 1] for s in starts]).astype(np.int64)
    window = torch.from_numpy(rows)
    return window[:, :-1], window[:, 1:]
