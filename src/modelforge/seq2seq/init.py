"""`modelforge init DATA --task seq2seq --target COLUMN`: a config that trains without edits.

DATA is a table with the target column and one source text column, or one of two line-aligned files
(`train.de` with `--target en` pairs it with `train.en`; `val`/`valid`/`dev` files with the same
suffixes beside it become data.valid). Everything else is chosen from what the data looks like:

- tokenizer per side: `symbols` for short space-separated symbol strings (phonemes), `char` for short
  strings without spaces (words, numbers), else byte-level `bpe` with a vocabulary of a third of the
  distinct words (300 to 8,000);
- model size from the number of pairs (128 wide, 2+2 layers under 5,000 pairs; 256 wide, 3+3 above,
  the feed-forward 2× the width under 200,000 pairs and 4× from there: CPU time goes where data is);
- epochs from the number of pairs (about 300,000 pairs seen, 10 to 60 epochs; at least 20 when both
  sides are short symbol strings, which are scored by exact sequence and were still improving at 10 on
  cmudict), warm-up and limits to match;
- validation and test shares cut from the training rows of 10 % each, or 5,000 rows each where that is
  less (5,000 rows measure an error rate to about ±0.6 points; the rest trains); a table's column naming
  each row's split (train / valid / test) becomes data.split.column, shares cut only for parts it lacks.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from modelforge.config import DataConfig, ParallelFiles
from modelforge.data.readers import holds_free_text, read_data, sample_table
from modelforge.data.split import named_split_column
from modelforge.errors import DataError
from modelforge.seq2seq.data import Pairs, read_pairs

HELD_OUT_STEMS = ("val", "valid", "dev")
HELD_OUT_ROWS = 5000  # the most rows each of the valid and test shares takes from the training data
SHORT_STRINGS = ("char", "symbols")


def sibling_files(data: Path, target: str | None) -> ParallelFiles | None:
    """`train.de` + target "en" → {source: train.de, target: train.en} when train.en exists."""
    if target is None or not data.suffix:
        return None
    other = data.with_suffix(f".{target}")
    return ParallelFiles(source=str(data), target=str(other)) if other.is_file() and other != data else None


def choose_tokenizer(texts: list[str]) -> tuple[str, int]:
    """(tokenizer, vocab size) for one side, from its texts (see the module docstring)."""
    lengths = np.array([len(t) for t in texts])
    words = [t.split() for t in texts]
    distinct_words = {w for ws in words for w in ws}
    single_spaced = all(" ".join(ws) == t for ws, t in zip(words, texts, strict=True))
    mean_words = float(np.mean([len(ws) for ws in words]))
    if single_spaced and mean_words > 1.5 and len(distinct_words) <= 200 and mean_words <= 40:
        return "symbols", len(distinct_words) + 4
    if float(np.mean(lengths)) <= 30 and mean_words <= 1.5 and len({c for t in texts for c in t}) <= 300:
        return "char", 0
    vocab = int(min(8000, max(300, len(distinct_words) // 3)))  # small data learns better with small vocabularies
    return "bpe", int(math.ceil(vocab / 100) * 100)


def token_limit(texts: list[str], tokenizer: str) -> int:
    """The longest text in its units (bytes bound BPE tokens), doubled for unseen text, 32 to 512."""
    if tokenizer == "symbols":
        longest = max(len(t.split()) for t in texts)
    elif tokenizer == "char":
        longest = max(len(t) for t in texts)
    else:
        longest = max(len(t.encode("utf-8")) for t in texts) // 2  # BPE: ~2+ bytes a token on the longest text
    return int(min(512, max(32, 2 * (longest + 2))))


def recognizes_text_pairs(path: Path, target: str | None = None) -> bool:
    """For `modelforge init --target COLUMN` with no --task: a table of one text column beside the target
    (and at most a split column), where the target is free text (mostly distinct values, not numbers, two
    words or more on average): a translation or transcription table, not labels to classify."""
    frame = sample_table(path) if target is not None else None
    if frame is None or target not in frame.columns:
        return False
    split_column, _ = named_split_column(frame, [target])
    sources = [c for c in frame.columns if c not in (target, split_column)]
    if len(sources) != 1 or looks_like_media(frame[sources[0]]) or not holds_free_text(frame[target]):
        return False
    return bool(frame[target].dropna().astype(str).str.split().str.len().mean() >= 2)  # labels are a word or two


def looks_like_media(series: Any) -> bool:
    """Image or audio paths (other tasks' inputs), not text."""
    from modelforge.data.audio import looks_like_audio_paths
    from modelforge.data.readers import looks_like_image_paths

    return bool(looks_like_image_paths(series) or looks_like_audio_paths(series))


def seq2seq_config(data: Path, out: Path | None, target: str | None = None) -> dict[str, Any]:
    """A seq2seq config for `data` (a table with --target, or a line-aligned file with --target LANG)."""
    files = sibling_files(data, target)
    base = out.resolve().parent if out else Path.cwd()

    def relative(path: str | Path) -> str:
        return os.path.relpath(Path(path).resolve(), base)

    data_section: dict[str, Any]
    if files is not None:
        pairs = read_pairs(files, DataConfig(train=files))
        data_section = {"train": {"source": relative(files.source), "target": relative(files.target)}}
        for stem in HELD_OUT_STEMS:
            held_source, held_target = data.with_name(f"{stem}{data.suffix}"), data.with_name(f"{stem}.{target}")
            if held_source.is_file() and held_target.is_file() and held_source != data:
                data_section["valid"] = {"source": relative(held_source), "target": relative(held_target)}
                break
    else:
        if target is None:
            raise DataError(
                f"{data}: pass --target COLUMN (a table) or --target LANG (train.de with train.en beside it)"
            )
        if data.suffix and data.with_suffix(f".{target}") == data:
            raise DataError(f"--target {target}: names {data} itself; pass the source file")
        if data.suffix.lower() not in (".csv", ".tsv", ".parquet", ".jsonl", ".json", ".txt"):
            raise DataError(f"{data}: no {data.with_suffix('.' + target).name} beside it to pair with (--target)")
        column, marked = named_split_column(read_data(data), [target])
        pairs = read_pairs(str(data), DataConfig(train=str(data), target=target), column)
        data_section = {"train": relative(data), "target": target, "source": pairs.source_name}
        if column is not None:  # the table's own split; shares only for the parts it marks no rows of
            share = held_out_share(pairs.parts.count("train") if pairs.parts else len(pairs))
            data_section["split"] = {"column": column} | {
                part: 0.0 if part in marked else share for part in ("valid", "test")
            }
    split_valid = files is None or "valid" not in data_section
    share = held_out_share(len(pairs))
    if split_valid and share < 0.1 and "split" not in data_section:
        data_section["split"] = {"valid": share, "test": share}
    return {"task": "seq2seq", "seed": 0, "data": data_section, **sized_sections(pairs, split_valid)}


def held_out_share(n: int) -> float:
    """The valid (and test) share cut from `n` training pairs: 10 %, at most HELD_OUT_ROWS rows."""
    return min(0.1, round(HELD_OUT_ROWS / max(n, 1), 4))


def sized_sections(pairs: Pairs, split_valid: bool) -> dict[str, Any]:
    """model, train and seq2seq sections sized from the pairs."""
    n = len(pairs)
    source_tokenizer, source_vocab = choose_tokenizer(pairs.sources)
    target_tokenizer, target_vocab = choose_tokenizer(pairs.targets)
    small = n < 5000
    model = (
        {"type": "seq2seq_transformer", "width": 128, "heads": 4, "encoder_layers": 2, "decoder_layers": 2, "ffn": 512}
        if small
        else {
            "type": "seq2seq_transformer",
            "width": 256,
            "heads": 4,
            "encoder_layers": 3,
            "decoder_layers": 3,
            "ffn": 1024 if n >= 200_000 else 512,
        }
    )
    train_pairs = n * (1 - 2 * held_out_share(n) if split_valid else 1.0)
    batch_size = 32 if small else 64
    shortest = 20 if source_tokenizer in SHORT_STRINGS and target_tokenizer in SHORT_STRINGS else 10
    epochs = int(min(60, max(shortest, math.ceil(300_000 / max(train_pairs, 1)))))
    total_steps = epochs * math.ceil(train_pairs / batch_size)
    max_source = token_limit(pairs.sources, source_tokenizer)
    max_target = token_limit(pairs.targets, target_tokenizer)
    model.update(dropout=0.1, max_positions=max(max_source, max_target))
    decoding: dict[str, Any] = {
        "source_tokenizer": source_tokenizer,
        "target_tokenizer": target_tokenizer,
        "max_source_tokens": max_source,
        "max_target_tokens": max_target,
        "beam": 5,
        "length_penalty": 0.6,
    }
    if source_tokenizer in ("bpe", "unigram"):
        decoding["source_vocab"] = source_vocab
    if target_tokenizer in ("bpe", "unigram"):
        decoding["target_vocab"] = target_vocab
    train = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": 1.0e-3 if small else 7.0e-4,
        "min_lr": 1.0e-5,
        "schedule": "cosine",
        "warmup_steps": int(min(4000, max(100, total_steps // 20))),
        "betas": [0.9, 0.98],
        "weight_decay": 0.0001,
        "label_smoothing": 0.1,
        "grad_clip": 1.0,
    }
    return dict(model=model, train=train, seq2seq=decoding)
