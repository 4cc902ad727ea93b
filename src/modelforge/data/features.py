"""Fitted preprocessing, one class per feature type, following scikit-learn's contract.

`__init__` takes parameters only, `fit` learns state (names ending in `_`) and returns self,
`transform` turns a pandas Series into a numpy array, and `to_json`/`from_json` round-trip
everything predict needs. No pickle anywhere.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from modelforge.errors import DataError, NotFittedError
from modelforge.files import path_from

PAD, UNK = 0, 1
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def _check_fitted(obj: Any, attr: str) -> None:
    if getattr(obj, attr, None) is None:
        raise NotFittedError(f"{type(obj).__name__} for {obj.name!r} is not fitted: call fit first")


# what tables write for "no value" where a number belongs (pandas reads "NA", "null", "nan" … as missing already)
MISSING_MARKERS = frozenset({"", "?", "-", "--", ".", "na", "n/a", "nan", "null", "none", "missing"})
# a number written for people: an optional sign and currency sign, thousands grouped by commas, a percent sign
_WRITTEN_NUMBER = re.compile(r"^\s*([-+]?)\s*[$€£¥]?\s*([-+]?(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d+)?)\s*%?\s*$")


def numbers(series: pd.Series) -> pd.Series:
    """A column's values as floats: plain numbers and numbers written as "$1,234.50", "12.5%" or "€3";
    missing markers ("?", "N/A", "-", …) and anything else unreadable are NaN (`_numeric_values` names the latter)."""
    values = pd.to_numeric(series, errors="coerce")
    if pd.api.types.is_numeric_dtype(series) or not values.isna().any():
        return values.astype(np.float64)
    unread = values.isna() & series.notna()
    matches = series[unread].astype(str).str.extract(_WRITTEN_NUMBER)
    digits = (matches[0].fillna("") + matches[1].fillna("").str.replace(",", "", regex=False)).str.replace(
        "+", "", regex=False
    )
    values = values.astype(np.float64)
    values[unread] = pd.to_numeric(digits.where(matches[1].str.contains(r"\d", na=False)), errors="coerce")
    return values


def missing_markers(series: pd.Series) -> pd.Series:
    """Which values are written-out missing values (`MISSING_MARKERS`) or null."""
    return series.isna() | series.astype(str).str.strip().str.lower().isin(MISSING_MARKERS)


def _numeric_values(series: pd.Series, name: str) -> np.ndarray:
    values = numbers(series)
    bad = values.isna() & ~missing_markers(series)
    if bad.any():
        rows = [int(row) + 1 for row in np.flatnonzero(bad.to_numpy())[:5]]
        raise DataError(
            f"column {name!r}: non-numeric value {series[bad].iloc[0]!r} at row(s) {rows}; "
            "declare it as a category feature or clean the data"
        )
    return values.to_numpy(dtype=np.float64)


class NumericEncoder:
    kind = "numeric"

    def __init__(
        self, name: str, impute: str = "median", normalize: str = "standard", clip_outliers: float | None = None
    ) -> None:
        self.name, self.impute, self.normalize, self.clip_outliers = name, impute, normalize, clip_outliers
        self.fill_: float | None = None
        self.shift_: float = 0.0
        self.scale_: float = 1.0
        self.median_: float | None = None  # a typical value to show (runs before it kept none: fill_)

    def fit(self, series: pd.Series) -> NumericEncoder:
        values = _numeric_values(series, self.name)
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise DataError(f"column {self.name!r}: no numeric values to fit")
        self.median_ = float(np.median(present))
        self.fill_ = {"mean": float(present.mean()), "median": self.median_, "zero": 0.0}[self.impute]
        if self.normalize == "standard":
            self.shift_, self.scale_ = float(present.mean()), float(present.std()) or 1.0
        elif self.normalize == "minmax":
            self.shift_, self.scale_ = float(present.min()), float(np.ptp(present)) or 1.0
        return self

    def transform(self, series: pd.Series) -> np.ndarray:
        _check_fitted(self, "fill_")
        values = _numeric_values(series, self.name)
        values = np.where(np.isnan(values), self.fill_, values)
        scaled = (values - self.shift_) / self.scale_
        if self.clip_outliers is not None:
            limit = self.clip_outliers if self.normalize == "standard" else self.clip_outliers * 1.0
            scaled = np.clip(scaled, -limit, limit)
        return scaled.astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {
            "impute": self.impute,
            "normalize": self.normalize,
            "clip_outliers": self.clip_outliers,
            "fill_": self.fill_,
            "shift_": self.shift_,
            "scale_": self.scale_,
            "median_": self.median_,
        }

    def example(self) -> float:
        """A typical value of the column: its training median."""
        _check_fitted(self, "fill_")
        return self.median_ if self.median_ is not None else self.fill_  # type: ignore[return-value]


class CategoryEncoder:
    """Values → indices; index 0 is the unknown bucket (unseen or rare values)."""

    kind = "category"

    def __init__(
        self, name: str, min_count: int = 1, max_categories: int = 10000, embedding_dim: int | None = None
    ) -> None:
        self.name, self.min_count, self.max_categories = name, min_count, max_categories
        self.embedding_dim = embedding_dim
        self.vocabulary_: list[str] | None = None
        self.most_frequent_: str | None = None  # a typical value to show (runs before it kept none)

    def fit(self, series: pd.Series) -> CategoryEncoder:
        counts = Counter(series.dropna().astype(str))
        kept = [v for v, c in counts.most_common(self.max_categories) if c >= self.min_count]
        self.vocabulary_ = sorted(kept)
        self.most_frequent_ = kept[0] if kept else None
        return self

    def example(self) -> str | None:
        """A typical value of the column: its most frequent training value (older runs: the first known one)."""
        _check_fitted(self, "vocabulary_")
        if self.most_frequent_ is not None:
            return self.most_frequent_
        return next(iter(self.vocabulary_ or []), None)

    @property
    def cardinality(self) -> int:
        _check_fitted(self, "vocabulary_")
        return len(self.vocabulary_) + 1  # type: ignore[arg-type]

    def transform(self, series: pd.Series) -> np.ndarray:
        _check_fitted(self, "vocabulary_")
        index = vocabulary_index(self, offset=1)
        return np.array([index.get(str(v), 0) if pd.notna(v) else 0 for v in series], dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        return {
            "min_count": self.min_count,
            "max_categories": self.max_categories,
            "embedding_dim": self.embedding_dim,
            "vocabulary_": self.vocabulary_,
            "most_frequent_": self.most_frequent_,
        }


def vocabulary_index(encoder: Any, offset: int) -> dict[str, int]:
    """value → id for a fitted vocabulary, built once per vocabulary (serving calls transform per batch)."""
    cached = encoder.__dict__.get("_vocabulary_index")
    if cached is None or cached[0] is not encoder.vocabulary_:
        cached = (encoder.vocabulary_, {v: i + offset for i, v in enumerate(encoder.vocabulary_)})
        encoder.__dict__["_vocabulary_index"] = cached
    return cached[1]  # type: ignore[no-any-return]


def tokenize(text: str, tokenizer: str, lowercase: bool) -> list[str]:
    text = text.lower() if lowercase else text
    return list(text) if tokenizer == "char" else _WORD.findall(text)


class TextEncoder:
    """Text → fixed-length token ids (0 padding, 1 unknown), vocabulary learned on train."""

    kind = "text"

    def __init__(
        self,
        name: str,
        tokenizer: str = "word",
        lowercase: bool = True,
        max_length: int = 64,
        vocab_size: int = 20000,
        min_count: int = 1,
        tokenizer_path: str | None = None,
    ) -> None:
        self.name, self.tokenizer, self.lowercase = name, tokenizer, lowercase
        self.max_length, self.vocab_size, self.min_count = max_length, vocab_size, min_count
        self.tokenizer_path = tokenizer_path
        self.vocabulary_: list[str] | None = None
        self.tokenizer_folder_: str | None = None  # tokenizer hf: the folder whose tokenizer.json is used
        self._hf: Any = None

    def fit(self, series: pd.Series) -> TextEncoder:
        if self.tokenizer == "hf":
            return self._fit_hf()
        counts: Counter[str] = Counter()
        for text in series.fillna("").astype(str):
            counts.update(tokenize(text, self.tokenizer, self.lowercase))
        kept = [t for t, c in counts.most_common(self.vocab_size - 2) if c >= self.min_count]
        self.vocabulary_ = ["<pad>", "<unk>", *kept]
        return self

    def transform(self, series: pd.Series) -> np.ndarray:
        _check_fitted(self, "vocabulary_")
        if self.tokenizer == "hf":
            return self._transform_hf(series)
        index = vocabulary_index(self, offset=0)
        out = np.zeros((len(series), self.max_length), dtype=np.int64)
        for row, text in enumerate(series.fillna("").astype(str)):
            ids = [index.get(t, UNK) for t in tokenize(text, self.tokenizer, self.lowercase)[: self.max_length]]
            out[row, : len(ids)] = ids
        return out

    def example(self) -> None:
        """No typical text is kept (a vocabulary is not a sentence)."""
        return None

    def tokens(self, text: str) -> list[str]:
        if self.tokenizer == "hf":
            encoding = self._hf_tokenizer().encode(text)
            return [t for t, keep in zip(encoding.tokens, encoding.attention_mask, strict=True) if keep]
        return tokenize(text, self.tokenizer, self.lowercase)[: self.max_length]

    # tokenizer hf: a pretrained encoder's own tokenizer.json (its ids, [CLS]/[SEP], its padding id)
    def _hf_tokenizer(self) -> Any:
        if self._hf is None:
            from modelforge.data.hf_tokenizer import load_hf_tokenizer, resolve_folder

            self._hf = load_hf_tokenizer(resolve_folder(self.tokenizer_folder_ or self.tokenizer_path), self.max_length)
        return self._hf

    def _fit_hf(self) -> TextEncoder:
        from modelforge.data.hf_tokenizer import resolve_folder, vocabulary_in_id_order

        self.tokenizer_folder_ = str(resolve_folder(self.tokenizer_path))
        self.vocabulary_ = vocabulary_in_id_order(self._hf_tokenizer())
        return self

    def _transform_hf(self, series: pd.Series) -> np.ndarray:
        encodings = self._hf_tokenizer().encode_batch(series.fillna("").astype(str).tolist())
        return np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(series), self.max_length)

    def to_json(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer,
            "lowercase": self.lowercase,
            "max_length": self.max_length,
            "vocab_size": self.vocab_size,
            "min_count": self.min_count,
            "tokenizer_path": self.tokenizer_path,
            "vocabulary_": self.vocabulary_,
            "tokenizer_folder_": self.tokenizer_folder_,
        }


class ImageEncoder:
    """Image paths or arrays → float32 N×C×H×W, resized and normalized per channel."""

    kind = "image"

    def __init__(
        self,
        name: str,
        size: tuple[int, int] | None = None,
        channels: int | None = None,
        augment: dict[str, Any] | None = None,
        root: str | None = None,
    ) -> None:
        self.name, self.size, self.channels = name, tuple(size) if size else None, channels
        self.augment, self.root = augment or {}, root
        self.size_: tuple[int, int] | None = None
        self.channels_: int | None = None
        self.mean_: list[float] | None = None
        self.std_: list[float] | None = None
        self.pixel_range_: list[float] | None = None  # lowest and highest training pixel (older runs: none)

    def fit(self, series: pd.Series) -> ImageEncoder:
        first = load_image(series.iloc[0], self.name, 0, self.root)
        self.channels_ = self.channels or (1 if first.ndim == 2 or first.shape[-1] == 1 else 3)
        self.size_ = tuple(self.size) if self.size else (first.shape[0], first.shape[1])  # type: ignore[assignment]
        sample = series.iloc[: min(len(series), 2000)]
        raw = self._raw(sample)
        self.mean_ = raw.mean(axis=(0, 2, 3)).tolist()
        self.std_ = [s or 1.0 for s in raw.std(axis=(0, 2, 3)).tolist()]
        self.pixel_range_ = [float(raw.min()), float(raw.max())]
        return self

    def example(self) -> None:
        """No typical image is kept."""
        return None

    def pixel_range(self) -> list[float]:
        """The lowest and highest training pixel value; [0, 1] (what image files decode to) for older runs."""
        return self.pixel_range_ or [0.0, 1.0]

    def _raw(self, series: pd.Series) -> np.ndarray:
        height, width = self.size_  # type: ignore[misc]
        out = np.empty((len(series), self.channels_, height, width), dtype=np.float32)  # type: ignore[arg-type]
        for row, value in enumerate(series):
            image = load_image(value, self.name, row, self.root)
            out[row] = _to_chw(image, self.channels_, (height, width))  # type: ignore[arg-type]
        return out

    def transform(self, series: pd.Series) -> np.ndarray:
        _check_fitted(self, "mean_")
        raw = self._raw(series)
        mean = np.asarray(self.mean_, dtype=np.float32)[None, :, None, None]
        std = np.asarray(self.std_, dtype=np.float32)[None, :, None, None]
        return (raw - mean) / std

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "channels": self.channels,
            "augment": self.augment,
            "root": self.root,
            "size_": self.size_,
            "channels_": self.channels_,
            "mean_": self.mean_,
            "std_": self.std_,
            "pixel_range_": self.pixel_range_,
        }


def load_image(value: Any, name: str, row: int, root: str | None = None) -> np.ndarray:
    """An image array, or the file at a path (a relative one not found as given is read from `root`)."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    from PIL import Image, UnidentifiedImageError

    path = path_from(value, root)
    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if image.mode in ("L", "1", "I", "I;16", "F") else "RGB"
            return np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"column {name!r} row {row + 1}: image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(
            f"column {name!r} row {row + 1}: cannot decode image {path} ({exc.__class__.__name__}); "
            "fix or remove the file, or set data.bad_rows: skip to leave out rows whose image cannot be read"
        ) from None


def _to_chw(image: np.ndarray, channels: int, size: tuple[int, int]) -> np.ndarray:
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[-1] not in (1, 3, 4) and image.shape[0] in (1, 3):  # C×H×W given
        image = np.moveaxis(image, 0, -1)
    image = image[:, :, :3]
    if image.shape[-1] != channels:
        image = image.mean(axis=-1, keepdims=True) if channels == 1 else np.repeat(image[:, :, :1], 3, axis=-1)
    if image.shape[:2] != tuple(size):
        from PIL import Image

        resized = [
            np.asarray(Image.fromarray(image[:, :, c]).resize((size[1], size[0]), Image.BILINEAR))
            for c in range(image.shape[-1])
        ]
        image = np.stack(resized, axis=-1)
    return np.moveaxis(image, -1, 0)


ENCODERS: dict[str, Any] = {
    "numeric": NumericEncoder,
    "category": CategoryEncoder,
    "text": TextEncoder,
    "image": ImageEncoder,
}


def _register_audio() -> None:
    from modelforge.data.audio import AudioEncoder

    ENCODERS["audio"] = AudioEncoder


_register_audio()


def encoder_from_config(feature: Any) -> Any:
    options = feature.model_dump(exclude={"type"})
    if feature.type == "image":
        options["augment"] = feature.augment.model_dump()
    return ENCODERS[feature.type](**options)


def encoder_from_json(kind: str, name: str, state: dict[str, Any]) -> Any:
    cls = ENCODERS[kind]
    params = {k: v for k, v in state.items() if not k.endswith("_")}
    encoder = cls(name=name, **params)
    for key, value in state.items():
        if key.endswith("_"):
            setattr(encoder, key, tuple(value) if key == "size_" and value else value)
    return encoder
