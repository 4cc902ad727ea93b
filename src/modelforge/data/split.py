"""Train/valid/test splits (seeded, optionally stratified) and in-memory batching."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from modelforge.config import DataConfig
from modelforge.errors import DataError

BUCKET_POOL = 50  # batches per length-sorted pool: enough to group lengths, still random
# what a split column (data.split.column) may call each part: ours, and the names other tools write
# (Hugging Face's "validation", "val", "dev")
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
}


def split_parts(values: pd.Series) -> pd.Series | None:
    """Each row's part (train, valid or test) when every value of `values` names one (`SPLIT_NAMES`,
    any case), else None."""
    names = values.astype(str).str.strip().str.lower()
    if not names.isin(list(SPLIT_NAMES)).all():
        return None
    return names.map(SPLIT_NAMES)


def column_parts(frame: pd.DataFrame, column: str, where: str = "") -> pd.Series:
    """The part each row of `frame` is marked for in `column` (data.split.column); DataError in one line
    when the column is missing or holds another word."""
    if column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise DataError(f"data.split.column: column {column!r} not found{where}; columns: {columns}")
    parts = split_parts(frame[column])
    if parts is None:
        unknown = sorted(set(frame[column].astype(str).str.strip().str.lower()) - set(SPLIT_NAMES))
        raise DataError(
            f"data.split.column {column!r}: expected train, valid or test (or validation, val, dev), got {unknown[:3]}"
        )
    return parts


def named_split_column(frame: pd.DataFrame, skip: list[str]) -> tuple[str | None, set[str]]:
    """The first column (outside `skip`) that names each row's part — train, and valid or test — and the
    parts it names; (None, empty) when none does. Such a column is the data's own split (a published
    test set, say): what `init` writes as data.split.column, not a feature, not re-drawn at random."""
    for column in frame.columns if len(frame) else []:
        if column in skip or frame[column].isna().any() or not isinstance(frame[column].iloc[0], str):
            continue  # (arrays of pixels, numbers: no names of parts; and str() of 70,000 arrays takes a minute)
        if split_parts(frame[column].head(100)) is None:
            continue
        parts = split_parts(frame[column])
        if parts is not None and "train" in set(parts) and len(set(parts)) > 1:
            return str(column), set(parts)
    return None, set()


def split_rows(
    n: int, data: DataConfig, seed: int, what: str, parts: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, valid and test for `n` rows (`what` names them: "pairs", "clips"). A part
    given as its own file (data.valid / data.test) takes no rows; with each row's named part
    (data.split.column), a part the column marks rows of takes those; any other part takes data.split's
    share (valid at least one row) of a seeded order of the rows left for training. DataError when
    nothing is left to train on."""
    none = np.array([], dtype=np.int64)
    marked = {part: np.flatnonzero(np.asarray(parts) == part) for part in ("train", "valid", "test")} if parts else {}
    if parts is not None and not len(marked.get("train", none)):
        raise DataError(f"data.split.column {data.split.column!r}: no rows marked train")
    rng = np.random.default_rng(data.split.seed if data.split.seed is not None else seed)
    pool = rng.permutation(marked["train"] if parts is not None else n)
    named_valid, named_test = marked.get("valid", none), marked.get("test", none)
    n_valid = 0 if data.valid is not None or len(named_valid) else max(1, round(len(pool) * data.split.valid))
    n_test = 0 if data.test is not None or len(named_test) else round(len(pool) * data.split.test)
    if len(pool) - n_valid - n_test < 1:
        rows = f"{len(pool)} {what}" + (" marked train" if parts is not None else "")
        raise DataError(f"data.train: {rows} leave none to train on after the valid and test shares")
    valid = named_valid if len(named_valid) else pool[:n_valid]
    test = named_test if len(named_test) else pool[n_valid : n_valid + n_test]
    return np.sort(pool[n_valid + n_test :]), valid, test


def split_indices(
    n: int, valid: float, test: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle row indices and cut them into train/valid/test; per class when labels are given."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts: list[list[np.ndarray]] = [[], [], []]
    for group in groups:
        group = rng.permutation(group)
        n_test = round(len(group) * test)
        n_valid = round(len(group) * valid)
        parts[2].append(group[:n_test])
        parts[1].append(group[n_test : n_test + n_valid])
        parts[0].append(group[n_test + n_valid :])
    train, valid_idx, test_idx = (np.sort(np.concatenate(p)) if p else np.array([], int) for p in parts)
    return train, valid_idx, test_idx


def batch_order(
    n: int, shuffle: bool, seed: int, epoch: int, lengths: torch.Tensor | None = None, batch_size: int = 1
) -> torch.Tensor:
    """Row order of one epoch; a pure function of (seed, epoch) so a resumed run replays it.

    With `lengths`, rows are bucketed: each pool of BUCKET_POOL batches is sorted by length and
    the batches are shuffled, so a batch pads to about its own rows' length, not the longest row.
    """
    if not shuffle:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator)
    if lengths is None or batch_size <= 1:
        return order
    pool = batch_size * BUCKET_POOL
    pools = [chunk[torch.argsort(lengths[chunk], stable=True)] for chunk in order.split(pool)]
    batches = torch.cat(pools).split(batch_size)
    shuffled = torch.randperm(len(batches), generator=generator)
    return torch.cat([batches[i] for i in shuffled.tolist()])


def balanced_rows(target: torch.Tensor, sampling: str) -> int:
    """Rows per epoch of `balanced_order`: every class as many times as the largest (oversample) or the
    smallest (undersample) class has rows."""
    counts = torch.bincount(target.long().cpu())
    counts = counts[counts > 0]
    return int(len(counts) * (counts.max() if sampling == "oversample" else counts.min()))


def balanced_order(target: torch.Tensor, sampling: str, seed: int, epoch: int) -> torch.Tensor:
    """Row order of one class-balanced epoch (train.sampling), a pure function of (seed, epoch):
    oversample repeats each smaller class's rows (every row once, the rest drawn at random) up to the
    largest class's count; undersample draws each larger class down to the smallest one's, new rows
    each epoch."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    target = target.long().cpu()
    per_class = balanced_rows(target, sampling) // int((torch.bincount(target) > 0).sum())
    parts = []
    for label in torch.unique(target):
        rows = torch.nonzero(target == label).squeeze(1)
        rows = rows[torch.randperm(len(rows), generator=generator)]
        repeats = -(-per_class // len(rows))
        parts.append(rows.repeat(repeats)[:per_class] if repeats > 1 else rows[:per_class])
    order = torch.cat(parts)
    return order[torch.randperm(len(order), generator=generator)]


def iterate_batches(
    tensors: dict[str, torch.Tensor], order: torch.Tensor, batch_size: int, start: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """Slices of the in-memory tensors, one gather per batch (no per-sample Python)."""
    for begin in range(start * batch_size, len(order), batch_size):
        index = order[begin : begin + batch_size]
        yield {name: value[index] for name, value in tensors.items()}
