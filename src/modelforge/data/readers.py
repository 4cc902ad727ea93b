"""Readers turn a file or folder into a pandas DataFrame, reporting rows they cannot read.

- tables: .csv, .tsv, .parquet, .jsonl / .json (one object per line)
- arrays: .npz with `x` (N×H×W, N×H×W×C images or N×D features) and a target array
- images: a folder with one subfolder per class → columns `image` (path) and `label`
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from modelforge.errors import DataError

if TYPE_CHECKING:
    from modelforge.config import DataConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".json", ".ndjson"}


@dataclass
class ReadReport:
    """Rows dropped while reading: count and the first row numbers (1-based, header excluded)."""

    path: str
    bad_rows: list[int] = field(default_factory=list)
    reason: str = ""

    def describe(self) -> str:
        shown = ", ".join(str(r) for r in self.bad_rows[:5])
        more = " …" if len(self.bad_rows) > 5 else ""
        return f"{self.path}: {len(self.bad_rows)} unreadable row(s) ({self.reason}): rows {shown}{more}"


def train_files(data: DataConfig) -> list[str]:
    """data.train as a list: one file or folder, or several whose rows are read one after another."""
    return data.train if isinstance(data.train, list) else [data.train]


def read_data(path: str | Path, bad_rows: str = "drop") -> pd.DataFrame:
    """Read a table, an .npz or an image folder into a DataFrame."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        return read_image_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path)
    if suffix in TABLE_SUFFIXES:
        frame, report = read_table(path)
        if report.bad_rows:
            if bad_rows == "error":
                raise DataError(report.describe() + "; set data.bad_rows: drop to skip them")
            warnings.warn(report.describe() + "; dropped", stacklevel=2)
        if frame.empty:
            raise DataError(f"{path}: no rows")
        return frame
    raise DataError(
        f"{path}: unsupported file type {suffix or '(none)'}; expected one of "
        f"{', '.join(sorted(TABLE_SUFFIXES | {'.npz'}))} or an image folder"
    )


def read_table(path: Path) -> tuple[pd.DataFrame, ReadReport]:
    suffix = path.suffix.lower()
    report = ReadReport(str(path))
    try:
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path), report
        if suffix in {".jsonl", ".json", ".ndjson"}:
            return _read_jsonl(path, report), report
        return _read_delimited(path, "\t" if suffix == ".tsv" else ",", report), report
    except DataError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DataError(f"{path}: cannot read as {suffix[1:]} table: {first}") from None


def _read_delimited(path: Path, sep: str, report: ReadReport) -> pd.DataFrame:
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter=sep))
    if not rows:
        raise DataError(f"{path}: empty file")
    header, body = rows[0], rows[1:]
    width = len(header)
    ragged = [i + 1 for i, row in enumerate(body) if len(row) != width and row]
    if ragged:
        report.bad_rows, report.reason = ragged, f"wrong number of fields, expected {width}"
        keep = [r for r in body if len(r) == width]
        text = "\n".join(
            [sep.join(_quote(v, sep) for v in header)] + [sep.join(_quote(v, sep) for v in r) for r in keep]
        )
    # keep_default_na=False keeps words like "null"/"NA" in text; empty cells are still missing
    return pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False, na_values=[""])


def _quote(value: str, sep: str) -> str:
    if any(ch in value for ch in (sep, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


def _read_jsonl(path: Path, report: ReadReport) -> pd.DataFrame:
    records, bad = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad.append(number)
                continue
            if not isinstance(record, dict):
                bad.append(number)
                continue
            records.append(record)
    if bad:
        report.bad_rows, report.reason = bad, "not a JSON object"
    return pd.DataFrame.from_records(records)


def read_npz(path: Path) -> pd.DataFrame:
    """Arrays of an .npz become columns: image stacks stay one `x` column of arrays."""
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read .npz: {exc}") from None
    if "x" not in arrays:
        raise DataError(f"{path}: .npz needs an array named 'x' (found {', '.join(arrays) or 'none'})")
    x = arrays.pop("x")
    n = len(x)
    columns: dict[str, object] = {}
    if x.ndim == 1:
        columns["x"] = x
    elif x.ndim == 2:
        width = len(str(x.shape[1] - 1))
        for j in range(x.shape[1]):
            columns[f"x{j:0{width}d}"] = x[:, j]
    elif x.ndim in (3, 4):
        series = pd.Series(list(x), dtype=object)
        columns["x"] = series
    else:
        raise DataError(f"{path}: array 'x' has shape {x.shape}; expected N×D, N×H×W or N×H×W×C")
    for name, values in arrays.items():
        if len(values) != n:
            raise DataError(f"{path}: array {name!r} has {len(values)} rows but 'x' has {n}")
        columns[name] = values if values.ndim == 1 else pd.Series(list(values), dtype=object)
    return pd.DataFrame(columns)


def read_image_folder(path: Path) -> pd.DataFrame:
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{path}: an image folder needs one subfolder per class")
    rows = [
        (str(file), cls.name)
        for cls in classes
        for file in sorted(cls.rglob("*"))
        if file.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not rows:
        from modelforge.data.audio import AUDIO_SUFFIXES

        sounds = [(str(f), c.name) for c in classes for f in sorted(c.rglob("*")) if f.suffix.lower() in AUDIO_SUFFIXES]
        if sounds:
            return pd.DataFrame(sounds, columns=["audio", "label"])
        raise DataError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) or WAV files in its class folders")
    return pd.DataFrame(rows, columns=["image", "label"])


def is_image_array_column(series: pd.Series) -> bool:
    return series.dtype == object and len(series) > 0 and isinstance(series.iloc[0], np.ndarray)


def looks_like_image_paths(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(20)
    return len(sample) > 0 and all(Path(v).suffix.lower() in IMAGE_SUFFIXES for v in sample)
