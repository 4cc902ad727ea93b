"""Parallel text for seq2seq: pairs read from a table or two line-aligned files, checked, split.

A table (CSV/TSV/JSONL/Parquet) has a target text column (`data.target`) and a source text column
(`data.source`, else the one other column holding text). Two files (`{source: train.de, target:
train.en}`) are line-aligned; their suffixes ("de", "en") name the two sides, as the columns of a
table do, and are the names `predict` and `serve` read the source from.

Refused in one line each: files of different line counts, an empty source or target, a missing column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelforge.config import DataConfig, ParallelFiles
from modelforge.data.split import column_parts, split_rows
from modelforge.errors import DataError, did_you_mean


@dataclass
class Pairs:
    sources: list[str]
    targets: list[str]
    source_name: str
    target_name: str
    parts: list[str] | None = None  # each pair's split (train / valid / test) where data.split.column names it

    def __len__(self) -> int:
        return len(self.sources)

    def take(self, rows: np.ndarray) -> Pairs:
        parts = None if self.parts is None else [self.parts[i] for i in rows]
        return Pairs(
            [self.sources[i] for i in rows], [self.targets[i] for i in rows], self.source_name, self.target_name, parts
        )


def side_name(path: str) -> str:
    """A file's language name: its suffix without the dot ("train.de" → "de"), else its stem."""
    suffix = Path(path).suffix.lstrip(".")
    return suffix or Path(path).stem


def read_lines(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line.rstrip("\r") for line in lines]


def read_parallel_files(files: ParallelFiles) -> Pairs:
    sources, targets = read_lines(files.source), read_lines(files.target)
    if len(sources) != len(targets):
        raise DataError(
            f"{files.source} has {len(sources)} lines but {files.target} has {len(targets)}: "
            "parallel files must be line-aligned (line N translates line N)"
        )
    pairs = Pairs(sources, targets, side_name(files.source), side_name(files.target))
    if pairs.source_name == pairs.target_name:
        pairs.source_name, pairs.target_name = "source", "target"
    check_not_empty(pairs, files.source, "line")
    return pairs


def text_columns(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]


def source_column(frame: pd.DataFrame, target: str, source: str | None, where: str) -> str:
    """`source` when given (and present), else the one text column beside the target."""
    if source is not None:
        if source not in frame.columns:
            raise DataError(
                f"{where}: source column {source!r} missing{did_you_mean(source, map(str, frame.columns))} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
        return source
    others = [str(c) for c in frame.columns if c != target]
    if len(others) > 1:  # several columns: the one holding text
        others = [c for c in text_columns(frame) if c != target]
    if len(others) != 1:
        found = ", ".join(others) or "none"
        raise DataError(f"{where}: set data.source to the source text column (text columns beside {target!r}: {found})")
    return others[0]


def read_table_pairs(
    path: str, target: str | None, source: str | None, bad_rows: str, split_column: str | None = None
) -> Pairs:
    """The pairs a table lists; with `split_column` (data.split.column), the split each is marked for."""
    from modelforge.data.readers import read_data

    frame = read_data(path, bad_rows)
    if split_column is not None:
        parts = column_parts(frame, split_column, f" in {path}")
        frame = frame.drop(columns=[split_column])  # bookkeeping, not a text column
    if target is None:
        raise DataError(f"{path}: set data.target to the target text column (columns: {', '.join(frame.columns)})")
    if target not in frame.columns:
        raise DataError(
            f"{path}: target column {target!r} missing{did_you_mean(target, map(str, frame.columns))} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    source = source_column(frame, target, source, path)
    keep = frame[source].notna() & frame[target].notna()
    if bad_rows == "skip":
        frame = frame[keep & (frame[source].astype(str).str.strip() != "") & (frame[target].astype(str) != "")]
    pairs = Pairs(
        [str(v) if pd.notna(v) else "" for v in frame[source]],
        [str(v) if pd.notna(v) else "" for v in frame[target]],
        source,
        target,
        None if split_column is None else parts.loc[frame.index].tolist(),
    )
    check_not_empty(pairs, path, "row")
    return pairs


def check_not_empty(pairs: Pairs, where: str, unit: str) -> None:
    """DataError naming the first pair with an empty (or all-blank) side."""
    if not len(pairs):
        raise DataError(f"{where}: no sentence pairs")
    for index, (source, target) in enumerate(zip(pairs.sources, pairs.targets, strict=True)):
        if not source.strip() or not target.strip():
            side = "source" if not source.strip() else "target"
            raise DataError(
                f"{where}: {unit} {index + 1} has an empty {side}; remove the pair"
                + (" (or set data.bad_rows: skip)" if unit == "row" else "")
            )


def read_pairs(files: str | list[str] | ParallelFiles, data: DataConfig, split_column: str | None = None) -> Pairs:
    if isinstance(files, ParallelFiles):
        return read_parallel_files(files)
    if isinstance(files, list):
        tables = [read_table_pairs(f, data.target, data.source, data.bad_rows, split_column) for f in files]
        first = tables[0]
        return Pairs(
            [s for p in tables for s in p.sources], [t for p in tables for t in p.targets], first.source_name,
            first.target_name, None if split_column is None else [m for p in tables for m in p.parts or []],
        )  # fmt: skip
    return read_table_pairs(files, data.target, data.source, data.bad_rows, split_column)


def split_pairs(data: DataConfig, seed: int) -> tuple[Pairs, Pairs, Pairs | None]:
    """Train, valid and test pairs: data.valid / data.test when given, else the rows data.split.column
    marks, else seeded shares of data.train (data.split.valid, data.split.test). Test is None when
    nothing gives one."""
    if isinstance(data.train, ParallelFiles) and data.split.column is not None:
        raise DataError("data.split.column: {source, target} files have no columns; give data.valid / data.test files")
    pairs = read_pairs(data.train, data, data.split.column)
    train_rows, valid_rows, test_rows = split_rows(len(pairs), data, seed, "pairs", pairs.parts)
    valid = read_pairs(data.valid, data) if data.valid is not None else pairs.take(valid_rows)
    test = read_pairs(data.test, data) if data.test is not None else pairs.take(test_rows)
    return pairs.take(train_rows), valid, (test if len(test.sources) else None)
