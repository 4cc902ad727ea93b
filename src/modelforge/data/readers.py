"""Readers turn a file or folder into a pandas DataFrame, reporting rows they cannot read.

- tables: .csv, .tsv, .parquet, .jsonl / .json (one object per line)
- arrays: .npz with `x` (N×H×W, N×H×W×C images or N×D features) and a target array
- images: a folder with one subfolder per class → columns `image` (path) and `label`
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelforge.datasets.catalog import DATASET_PREFIX, resolve_dataset_path
from modelforge.errors import DataError
from modelforge.files import decompressed, head_text, plain_suffix, read_utf8

if TYPE_CHECKING:
    from modelforge.config import DataConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".json", ".ndjson"}


@dataclass
class ReadReport:
    """Rows a reader could not read: their numbers (1-based data rows), the file line of the first, and why."""

    path: str
    bad_rows: list[int] = field(default_factory=list)
    reason: str = ""
    first_line: int = 0
    first_problem: str = ""
    total: int = 0

    def refusal(self) -> str:
        return (
            f"{self.path}: line {self.first_line}: {self.first_problem} ({len(self.bad_rows)} of {self.total} "
            f"rows {self.reason}); fix the file, or set data.bad_rows: skip in the config to skip such rows"
        )

    def skipped(self) -> str:
        shown = ", ".join(str(r) for r in self.bad_rows[:5]) + (" …" if len(self.bad_rows) > 5 else "")
        return f"{self.path}: skipped {len(self.bad_rows)} of {self.total} rows ({self.reason}): rows {shown}"


def train_files(data: DataConfig) -> list[str]:
    """data.train as a list: one file or folder, several whose rows are read one after another, or
    seq2seq's source and target files."""
    if isinstance(data.train, list):
        return data.train
    if isinstance(data.train, str):
        return [data.train]
    return [data.train.source, data.train.target]


def data_files(data: DataConfig) -> list[str]:
    """Every file the data section names: train, then valid and test (each a file or a source/target pair)."""
    held_out = []
    for files in (data.valid, data.test):
        if isinstance(files, str):
            held_out.append(files)
        elif files is not None:
            held_out.extend([files.source, files.target])
    return [*train_files(data), *held_out]


def read_data(path: str | Path, bad_rows: str = "error") -> pd.DataFrame:
    """Read a table, an .npz or an image folder into a DataFrame; rows a table reader cannot read are an
    error naming the first, or with `bad_rows="skip"` skipped with a warning that counts them."""
    return read_data_with_rows(path, bad_rows)[0]


def read_data_with_rows(path: str | Path, bad_rows: str = "error") -> tuple[pd.DataFrame, list[int]]:
    """`read_data`, with each frame row's number in the file (1-based data rows, header excluded), so
    output rows can name their input row when some were skipped."""
    if str(path).startswith(DATASET_PREFIX):  # `--data dataset:sst2/test.csv`: a file of a fetched dataset
        path = resolve_dataset_path(str(path))
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        frame = read_idx_folder(path) if idx_image_files(path) else read_image_folder(path)
        rows = list(range(1, len(frame) + 1))
        return skip_unreadable_images(path, frame, rows) if bad_rows == "skip" else (frame, rows)
    suffix = plain_suffix(path)
    if suffix == ".npz":
        frame = read_npz(path)
        return frame, list(range(1, len(frame) + 1))
    if suffix in TABLE_SUFFIXES:
        frame, report, rows = read_table(path)
        if report.bad_rows:
            if bad_rows != "skip":
                raise DataError(report.refusal())
            warnings.warn(report.skipped(), stacklevel=2)
        if bad_rows == "skip":
            frame, rows = skip_unreadable_images(path, frame, rows)
        if frame.empty:
            raise DataError(f"{path}: no rows")
        return frame, rows
    raise DataError(
        f"{path}: unsupported file type {suffix or '(none)'}; expected one of "
        f"{', '.join(sorted(TABLE_SUFFIXES | {'.npz'}))} or an image folder"
    )


CSV_SEPARATORS = (",", ";", "\t", "|")


def skip_unreadable_images(path: Path, frame: pd.DataFrame, rows: list[int]) -> tuple[pd.DataFrame, list[int]]:
    """With `data.bad_rows: skip`, rows whose image file is missing or cannot be decoded are left out (relative
    paths are read as given, else from the data's folder), counted in a warning that names the first few."""
    from modelforge.data.features import load_image

    columns = [c for c in frame.columns if not is_image_array_column(frame[c]) and looks_like_image_paths(frame[c])]
    if not columns:
        return frame, rows
    root = str(path if path.is_dir() else path.parent)
    bad = np.zeros(len(frame), dtype=bool)
    for column in columns:
        for index, value in enumerate(frame[column]):
            try:
                load_image(value, str(column), index, root)
            except DataError:
                bad[index] = True
    if not bad.any():
        return frame, rows
    shown = ", ".join(str(v) for v in frame.loc[bad, columns[0]].head(3))
    warnings.warn(
        f"{path}: skipped {int(bad.sum())} of {len(frame)} rows whose image could not be read: {shown}"
        f"{' …' if bad.sum() > 3 else ''}",
        stacklevel=2,
    )
    kept = frame[~bad].reset_index(drop=True)
    return kept, [row for row, skip in zip(rows, bad, strict=True) if not skip]


def read_table(path: Path) -> tuple[pd.DataFrame, ReadReport, list[int]]:
    """A table, the rows it could not read, and the row number of each row it kept."""
    suffix = plain_suffix(path)
    report = ReadReport(str(path))
    try:
        if suffix in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
            return frame, report, list(range(1, len(frame) + 1))
        if suffix in {".jsonl", ".json", ".ndjson"}:
            return (*_read_jsonl(path, report),)
        return (*_read_delimited(path, "\t" if suffix == ".tsv" else None, report),)
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DataError(f"{path}: cannot read as {suffix[1:]} table: {first}") from None


def sample_table(path: Path, rows: int = 2000) -> pd.DataFrame | None:
    """`sample_rows` of a table file, or None for a path that is not one or cannot be read (what the task
    recognizers of `init` ask before they look at the columns)."""
    if not path.is_file() or plain_suffix(path) not in TABLE_SUFFIXES:
        return None
    try:
        return sample_rows(path, rows)
    except (DataError, ValueError, OSError):
        return None


def sample_rows(path: Path, rows: int = 2000) -> pd.DataFrame:
    """The first rows of a table, cells of delimited files as text (enough to tell what a column holds)."""
    suffix = plain_suffix(path)
    if suffix in {".csv", ".tsv"}:
        try:
            return pd.read_csv(
                path, sep=separator_of(path), nrows=rows, dtype=str, keep_default_na=False, na_values=[""]
            )
        except (OSError, EOFError, ValueError, pd.errors.ParserError) as exc:  # a torn archive, a malformed line
            raise DataError(f"{path}: cannot read ({exc})") from None
    return read_data(path).head(rows)


FREE_TEXT_DISTINCT = 0.5  # a column whose values are mostly distinct is free text (a transcript), not labels
FREE_TEXT_MIN_VALUES = 20


def holds_free_text(series: pd.Series) -> bool:
    """Whether a column reads as free text — transcripts, translations: 20 or more values, mostly distinct,
    and not numbers — rather than class labels or a quantity."""
    values = series.dropna().astype(str)
    distinct = values.nunique()
    numbers = pd.to_numeric(values, errors="coerce").notna().mean() if len(values) else 0.0
    return distinct >= FREE_TEXT_MIN_VALUES and distinct >= FREE_TEXT_DISTINCT * len(values) and numbers < 0.5


def separator_of(path: Path) -> str:
    """A delimited file's field separator: tab for .tsv, else the one its header line uses (`header_separator`)."""
    if plain_suffix(path) == ".tsv":
        return "\t"
    return header_separator(head_text(path))


def header_separator(text: str) -> str:
    """The field separator of a .csv: the one of `,` `;` `|` tab that splits the header into the most fields,
    `,` on a tie (spreadsheets in locales with a decimal comma write `;`)."""
    header = text.split("\n", 1)[0]
    return max(CSV_SEPARATORS, key=lambda sep: len(next(csv.reader([header], delimiter=sep), [])))


def _read_delimited(path: Path, sep: str | None, report: ReadReport) -> tuple[pd.DataFrame, ReadReport, list[int]]:
    text = read_utf8(path, DataError)
    sep = sep or header_separator(text)
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file")
    width, number, start = len(header), 0, reader.line_num + 1
    kept: list[list[str]] = []
    rows: list[int] = []
    for row in reader:
        if row:  # blank lines are not rows (pandas skips them too)
            number += 1
            if len(row) == width:
                kept.append(row)
                rows.append(number)
            else:
                if not report.bad_rows:
                    report.first_line, report.first_problem = start, f"{len(row)} fields, expected {width}"
                report.bad_rows.append(number)
        start = reader.line_num + 1
    report.total = number
    if report.bad_rows:
        report.reason = "have the wrong number of fields"
        text = "\n".join(
            [sep.join(_quote(v, sep) for v in header)] + [sep.join(_quote(v, sep) for v in r) for r in kept]
        )
    # keep_default_na=False keeps words like "null"/"NA" in text; empty cells are still missing
    # a `;`-separated file writes decimals with a comma ("51,26"), as the spreadsheets that write `;` do
    decimal = "," if sep == ";" else "."
    frame = pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal, keep_default_na=False, na_values=[""])
    if len(frame) != len(rows):  # rows pandas reads differently from the csv module (whitespace-only lines)
        rows = list(range(1, len(frame) + 1))
    return frame, report, rows


def _quote(value: str, sep: str) -> str:
    if any(ch in value for ch in (sep, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


def json_document_records(text: str) -> list[Any] | None:
    """The rows of a file that is one JSON document: an array of records, an object holding one such array
    (`{"data": [...]}`), or columns (`{"age": {"0": 51, ...}, ...}` as pandas writes by default); None when
    the text is not one JSON document (JSON Lines, a record a line)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(document, dict):
        arrays = [v for v in document.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(arrays) == 1:
            return arrays[0]  # type: ignore[no-any-return]
        if document and all(isinstance(v, dict | list) for v in document.values()):
            columns = {k: list(v.values()) if isinstance(v, dict) else v for k, v in document.items()}
            if len({len(v) for v in columns.values()}) == 1:
                return pd.DataFrame(columns).to_dict(orient="records")  # type: ignore[no-any-return]
        return [document]  # one record
    return document if isinstance(document, list) else None


def json_line(line: str) -> Any:
    """One JSON Lines record, or None for a line that is not JSON."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _read_jsonl(path: Path, report: ReadReport) -> tuple[pd.DataFrame, ReadReport, list[int]]:
    text = read_utf8(path, DataError)
    document = json_document_records(text)
    entries = enumerate(document if document is not None else text.splitlines(), start=1)
    records, rows, number = [], [], 0
    for line_number, entry in entries:
        if document is None and not entry.strip():
            continue
        number += 1
        record = entry if document is not None else json_line(entry)
        if not isinstance(record, dict):
            if not report.bad_rows:
                report.first_line, report.first_problem = line_number, "not a JSON object"
            report.bad_rows.append(number)
            continue
        records.append(record)
        rows.append(number)
    report.total, report.reason = number, "are not JSON objects"
    return pd.DataFrame.from_records(records), report, rows


# IDX, the format MNIST and its kin ship in (Fashion-MNIST, KMNIST, EMNIST): type code → numpy dtype
IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}  # fmt: skip
IDX_IMAGES = re.compile(r"images[-.]idx3[-.]ubyte(\.gz)?$")


def idx_image_files(folder: Path) -> list[Path]:
    """The IDX image files of a folder (`train-images-idx3-ubyte.gz`, `t10k-images-idx3-ubyte`, …)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and IDX_IMAGES.search(p.name))


def read_idx(path: Path) -> np.ndarray:
    """One IDX file, compressed or not: bytes 0 0 type ndim, then ndim big-endian int32 sizes, then the values."""
    raw = decompressed(path.read_bytes(), path, DataError)
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (MNIST's format: it starts with bytes 0 0, a type code, a rank)")
    dtype, rank = IDX_TYPES[raw[2]], raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=rank, offset=4)) if len(raw) >= 4 + 4 * rank else ()
    offset = 4 + 4 * rank
    if len(shape) != rank or len(raw) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise DataError(
            f"{path}: the IDX header says shape {shape} but the file holds {len(raw) - offset} bytes of values"
        )
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape)


def read_idx_folder(folder: Path) -> pd.DataFrame:
    """A folder of IDX image and label files (MNIST's layout): a row per image with its `label`, and a
    `split` column (train / test, from `train-*` and `t10k-*` or `test-*`) when the folder has both."""
    parts = []
    for images in idx_image_files(folder):
        labels = images.with_name(images.name.replace("images", "labels").replace("idx3", "idx1"))
        if not labels.is_file():
            raise DataError(f"{images}: no labels beside it (expected {labels.name})")
        pixels, classes = read_idx(images), read_idx(labels)
        if pixels.ndim != 3 or classes.ndim != 1 or len(pixels) != len(classes):
            raise DataError(
                f"{folder}: {images.name} holds {pixels.shape} and {labels.name} {classes.shape}; expected "
                "N images of H×W and N labels"
            )
        stem = images.name[: IDX_IMAGES.search(images.name).start()].lower()  # type: ignore[union-attr]
        part = "test" if "t10k" in stem or "test" in stem else "train"
        parts.append(pd.DataFrame({"image": pd.Series(list(pixels), dtype=object), "label": classes, "split": part}))
    frame = pd.concat(parts, ignore_index=True)
    return frame if frame["split"].nunique() > 1 else frame.drop(columns=["split"])


def read_npz(path: Path) -> pd.DataFrame:
    """Arrays of an .npz become columns: image stacks stay one `x` column of arrays."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = dict(archive)
    except ValueError as exc:
        # numpy's own messages suggest allow_pickle=True, which runs code from the file: never pass that on
        if "Object arrays" in str(exc):
            raise DataError(f"{path}: holds object arrays (pickles), which modelforge never loads") from None
        raise DataError(f"{path}: not an .npz archive of arrays (save one with numpy.savez)") from None
    except (AttributeError, TypeError, zipfile.BadZipFile, EOFError):  # a bare .npy (no context manager), a torn zip
        raise DataError(f"{path}: not an .npz archive of arrays (save one with numpy.savez)") from None
    arrays = npz_as_x_and_y(arrays)
    if "x" not in arrays:
        raise DataError(f"{path}: .npz needs an array named 'x' (found {', '.join(arrays) or 'none'})")
    scalars = [name for name, values in arrays.items() if values.ndim == 0]
    if scalars:
        raise DataError(f"{path}: array {scalars[0]!r} is a single value (shape ()); expected one entry per row")
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


NPZ_NAMES = {"X": "x", "Y": "y", "images": "x", "labels": "y", "data": "x", "target": "y"}  # other writers' names


def npz_as_x_and_y(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of an .npz as `x` and `y`: Keras' `x_train`, `y_train`, `x_test`, `y_test` (mnist.npz)
    joined with a `split` array (train / test); `X`, `images`, `data` as `x` and `Y`, `labels`, `target`
    as `y` when the archive has no `x`."""
    if "x" in arrays:
        return arrays
    parts = [part for part in ("train", "test") if f"x_{part}" in arrays and f"y_{part}" in arrays]
    if "train" in parts and len({arrays[f"x_{part}"].shape[1:] for part in parts}) == 1:
        sizes = [len(arrays[f"x_{part}"]) for part in parts]
        joined = {
            "x": np.concatenate([arrays[f"x_{part}"] for part in parts]),
            "y": np.concatenate([arrays[f"y_{part}"] for part in parts]),
            "split": np.concatenate([np.full(size, part) for part, size in zip(parts, sizes, strict=True)]),
        }
        if len(parts) == 1:
            del joined["split"]
        return joined
    renamed = {NPZ_NAMES.get(name, name): values for name, values in arrays.items()}
    return renamed if len(renamed) == len(arrays) else arrays


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
        documents = [(f, c.name) for c in classes for f in sorted(c.rglob("*")) if f.suffix.lower() == ".txt"]
        if documents:  # a text per file, its class the folder (aclImdb's pos/ and neg/)
            return pd.DataFrame([(read_utf8(f, DataError), label) for f, label in documents], columns=["text", "label"])
        raise DataError(
            f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}), WAV files or .txt files in its class folders"
        )
    return pd.DataFrame(rows, columns=["image", "label"])


def is_image_array_column(series: pd.Series) -> bool:
    return series.dtype == object and len(series) > 0 and isinstance(series.iloc[0], np.ndarray)


def looks_like_image_paths(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(20)
    return len(sample) > 0 and all(Path(v).suffix.lower() in IMAGE_SUFFIXES for v in sample)
