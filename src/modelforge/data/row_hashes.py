"""Fingerprints of a run's training rows, so `evaluate` can say when it scores rows the model trained on.

A run keeps one 64-bit hash per distinct training row in `train_rows.safetensors` (sorted uint64, plus
the hashed columns in its metadata). Only the feature columns are hashed: the same inputs with another
label are still rows the model has seen. Numbers are hashed as float64 and everything else as text, so
a CSV read back, or a DataFrame built by hand, matches its training rows. Above MAX_HASHES distinct rows
the run keeps the hashes below a threshold, a 1-in-k sample of rows chosen by their hash; `evaluate`
checks its own rows under the same threshold, so the share it reports estimates the same quantity.
Tables only: rows holding arrays (images, audio) are not hashed and `evaluate` says nothing.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelforge.files import atomic_write_bytes

ROW_HASHES_FILE = "train_rows.safetensors"
MAX_HASHES = 1_000_000  # 8 MB in the run directory
SCALAR_KINDS = frozenset(
    {"string", "empty", "integer", "floating", "mixed-integer-float", "boolean", "categorical", "decimal"}
    | {"datetime", "datetime64", "date", "time", "timedelta", "timedelta64"}
)


class TrainingRowsWarning(UserWarning):
    """The rows being evaluated include rows the run was trained on."""


def row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray | None:
    """One uint64 per row of `frame` over `columns`; None when a column is missing or holds arrays."""
    if not columns or any(name not in frame.columns for name in columns):
        return None
    normalized: dict[str, pd.Series] = {}
    for name in columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            normalized[name] = column.astype("float64")
        elif pd.api.types.infer_dtype(column, skipna=True) in SCALAR_KINDS:
            normalized[name] = column.astype(str)
        else:
            return None
    table = pd.DataFrame(normalized, index=frame.index)
    return np.asarray(pd.util.hash_pandas_object(table, index=False), dtype=np.uint64)


@dataclass(frozen=True)
class TrainingRows:
    """The saved fingerprints: sorted distinct hashes, the columns hashed, and the sampling threshold."""

    hashes: np.ndarray
    columns: list[str]
    below: int | None  # only hashes below this were kept (None: all of them)

    def overlap(self, frame: pd.DataFrame) -> tuple[int, int] | None:
        """(rows of `frame` also among the training rows, rows of `frame`), estimated from the sample when
        the run kept one; None when the frame lacks the hashed columns or holds arrays."""
        hashes = row_hashes(frame, self.columns)
        if hashes is None or len(hashes) == 0:
            return None
        checked = hashes if self.below is None else hashes[hashes < np.uint64(self.below)]
        if len(checked) == 0:
            return 0, len(hashes)
        position = np.minimum(np.searchsorted(self.hashes, checked), max(len(self.hashes) - 1, 0))
        found = int(np.count_nonzero(self.hashes[position] == checked)) if len(self.hashes) else 0
        return round(found * len(hashes) / len(checked)), len(hashes)


def save_training_rows(path: Path, frame: pd.DataFrame, columns: list[str]) -> bool:
    """Write the fingerprints of `frame`'s rows to `path`; False (and nothing written) for non-table rows."""
    from safetensors.numpy import save

    hashes = row_hashes(frame, columns)
    if hashes is None:
        return False
    kept, below = np.unique(hashes), None
    if len(kept) > MAX_HASHES:
        below = int(kept[MAX_HASHES])
        kept = kept[:MAX_HASHES]
    metadata = {"columns": json.dumps(columns), "below": "" if below is None else str(below), "rows": str(len(frame))}
    atomic_write_bytes(path, save({"hashes": kept}, metadata=metadata))
    return True


def load_training_rows(path: Path) -> TrainingRows | None:
    """The fingerprints a run saved; None for runs without them (older runs, images, audio)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as file:
        metadata = file.metadata() or {}
        hashes = file.get_tensor("hashes")
    below = metadata.get("below") or None
    return TrainingRows(hashes, json.loads(metadata.get("columns", "[]")), int(below) if below else None)


def warn_if_training_rows(run_dir: Path, frame: pd.DataFrame, stacklevel: int = 3) -> tuple[int, int] | None:
    """Warn (TrainingRowsWarning) when rows of `frame` were training rows of the run; returns the overlap."""
    saved = load_training_rows(run_dir / ROW_HASHES_FILE)
    overlap = saved.overlap(frame) if saved is not None else None
    if overlap is None or overlap[0] == 0:
        return overlap
    found, total = overlap
    estimated = "about " if saved is not None and saved.below is not None else ""
    warnings.warn(
        f"{estimated}{found} of {total} rows ({found / total:.1%}) also appear in the training data of "
        f"{run_dir}; metrics on them overstate how the model does on new data",
        TrainingRowsWarning,
        stacklevel=stacklevel,
    )
    return overlap
