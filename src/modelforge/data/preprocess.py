"""The whole fitted preprocessing of a run: feature encoders plus the target encoder.

`fit_preprocessor(frame, config)` learns it on the training split; `Preprocessor.transform`
turns any frame (train, test, or a predict request) into the model's input tensors; the
JSON form is saved as `preprocessing.json` in the run so predict sees what train saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelforge.config import (
    AudioFeature,
    CategoryFeature,
    ImageFeature,
    NumericFeature,
    RunConfig,
    TextFeature,
)
from modelforge.data.audio import looks_like_audio_paths
from modelforge.data.features import encoder_from_config, encoder_from_json, missing_markers, numbers
from modelforge.data.readers import is_image_array_column, looks_like_image_paths
from modelforge.errors import DataError, did_you_mean
from modelforge.tasks import predicts_label_sets, predicts_labels

FeatureSpec = NumericFeature | CategoryFeature | TextFeature | ImageFeature | AudioFeature

CATEGORY_MAX_DISTINCT = 0.2  # a string column with at most this share of distinct values is a category
IDENTIFIER_MIN_DISTINCT = 0.5  # a category column with more than this share of distinct values is an identifier
IDENTIFIER_MIN_ROWS = 50  # too few rows to tell an identifier from a category


# ----------------------------------------------------------------------------- inference
def infer_feature(name: str, series: pd.Series) -> FeatureSpec:
    """Guess a feature type from a column's values."""
    if is_image_array_column(series):
        return ImageFeature(name=name)
    if pd.api.types.is_bool_dtype(series):
        return CategoryFeature(name=name)
    if pd.api.types.is_numeric_dtype(series):
        return NumericFeature(name=name)
    if looks_like_image_paths(series):
        return ImageFeature(name=name)
    if looks_like_audio_paths(series):
        return AudioFeature(name=name)
    written = series[~missing_markers(series)]
    if len(written) and numbers(written).notna().mean() > 0.95:  # "$1,234", "12%" and "?" for missing included
        return NumericFeature(name=name)
    text = series.dropna().astype(str)
    mean_words = text.str.split().str.len().mean() if len(text) else 0
    distinct = text.nunique() / max(len(text), 1)
    # a few values repeated over many rows are categories however many words each has ("2. Middle Atlantic")
    if distinct > CATEGORY_MAX_DISTINCT and (mean_words >= 3 or (distinct > 0.5 and text.str.len().mean() > 20)):
        max_words = int(np.percentile(text.str.split().str.len(), 95)) if len(text) else 16
        return TextFeature(name=name, max_length=max(8, min(256, max_words + 2)))
    return CategoryFeature(name=name)


def unused_reason(feature: FeatureSpec, series: pd.Series) -> str | None:
    """Why a column makes no feature, or None: one value in every row; a saved index (`row_numbers`); or
    strings that are mostly unique — dates, or an identifier such as a name or a ticket number: a model
    memorizes the training rows' values and meets unseen ones in every new row (ISLP's Auto: test r² 0.66
    with its car names, 0.87 without)."""
    if isinstance(feature, ImageFeature | AudioFeature):  # arrays or files: every value differs, and that is fine
        return None
    values = series.dropna()
    distinct = int(values.astype(str).nunique())
    if distinct <= 1:
        return f"one value in every row ({_json_scalar(values.iloc[0])!r})" if distinct else "no values"
    if isinstance(feature, NumericFeature) and row_numbers(str(series.name), values):
        return "a row number (a saved index: the rows counted one by one)"
    identifier = distinct > IDENTIFIER_MIN_DISTINCT * len(values) and len(values) >= IDENTIFIER_MIN_ROWS
    if isinstance(feature, CategoryFeature) and identifier:
        if looks_like_dates(values):
            return (
                f"dates ({distinct} different values in {len(values)} rows); dates are not a feature type: "
                "to use one, add columns of numbers drawn from it (year, month, day of week)"
            )
        return f"an identifier ({distinct} different values in {len(values)} rows)"
    return None


ROW_NUMBER_NAMES = {"", "index", "id", "row", "rowid", "row_id", "level_0"}


def row_numbers(name: str, values: pd.Series) -> bool:
    """A column that counts the rows — named like an index (pandas writes `Unnamed: 0` for its own) and
    holding consecutive distinct integers: nothing a model should learn from (sorted data makes it a leak)."""
    if name.strip().lower() not in ROW_NUMBER_NAMES and not name.startswith("Unnamed:"):
        return False
    numbers_ = pd.to_numeric(values, errors="coerce")
    if numbers_.isna().any() or not whole_numbers(numbers_) or numbers_.nunique() != len(numbers_):
        return False
    return bool(numbers_.max() - numbers_.min() == len(numbers_) - 1)


def looks_like_dates(values: pd.Series) -> bool:
    """Whether nearly every value (of up to 200) reads as a date or time: "2021-03-04", "3/4/2021 10:00"."""
    sample = values.astype(str).head(200)
    dated = sample.str.contains(r"\d") & (sample.str.len() >= 6) & sample.str.contains(r"[-/:.]")
    if dated.mean() < 0.95:
        return False
    parsed = pd.to_datetime(sample[dated], errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.95)


def infer_columns(frame: pd.DataFrame, target: str | None, drop: list[str]) -> tuple[list[FeatureSpec], dict[str, str]]:
    """The features inferred from a table's columns, and the columns left out with the reason for each.

    A model reads one text, image or audio column; of several, the first is kept (for text, the one with
    the most words a row) and the others are left out, so an inferred config always trains.
    """
    features: list[FeatureSpec] = []
    left_out: dict[str, str] = {}
    for column in frame.columns:
        if column == target or column in drop:
            continue
        feature = infer_feature(column, frame[column])
        reason = unused_reason(feature, frame[column])
        if reason is None:
            features.append(feature)
        else:
            left_out[column] = reason
    for kind in ("text", "image", "audio"):
        named = [f.name for f in features if f.type == kind]
        if kind == "text":
            named.sort(key=lambda name: -frame[name].dropna().astype(str).str.split().str.len().mean())
        for extra in named[1:]:
            left_out[extra] = f"a second {kind} column (a model reads one; kept: {named[0]})"
    features = [f for f in features if f.name not in left_out]
    return features, left_out


def label_sets(values: pd.Series) -> bool:
    """Whether a target holds sets of labels: lists (JSON Lines), or labels joined by `|` in a tenth of the
    rows or more ("news|sport"), each a word or two."""
    if values.map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
        return True
    if pd.api.types.is_numeric_dtype(values) or values.empty:
        return False
    texts = values.astype(str)
    joined = texts.str.contains(LABEL_SEPARATOR, regex=False)
    if joined.mean() < 0.1:
        return False
    parts = texts.str.split(LABEL_SEPARATOR, regex=False).explode().str.strip()
    return bool((parts != "").all() and parts.str.split().str.len().max() <= 2)


def whole_numbers(values: pd.Series) -> bool:
    """Whether a column holds integers (or floats that all are)."""
    if pd.api.types.is_integer_dtype(values):
        return True
    return pd.api.types.is_float_dtype(values) and bool(np.all(np.mod(values.to_numpy(), 1) == 0))


def infer_task(series: pd.Series, media: bool = False) -> str:
    """Classification for labels (text, bool, few integers; any integers beside images or audio, whose
    targets are class ids: EMNIST's 62), regression for real values."""
    values = series.dropna()
    if label_sets(values):
        return "multilabel"
    if pd.api.types.is_float_dtype(values):
        return "classification" if whole_numbers(values) and (media or values.nunique() <= 20) else "regression"
    if pd.api.types.is_integer_dtype(values):
        return "classification" if media or values.nunique() <= 50 else "regression"
    return "classification"


def infer_features(frame: pd.DataFrame, target: str | None, drop: list[str]) -> list[FeatureSpec]:
    return infer_columns(frame, target, drop)[0]


# ----------------------------------------------------------------------------- target
class LabelEncoder:
    """Class labels ↔ indices; labels keep their JSON type (int or str) for predictions."""

    def __init__(self) -> None:
        self.classes_: list[Any] | None = None

    def fit(self, series: pd.Series) -> LabelEncoder:
        values = series.dropna()
        if values.empty:
            raise DataError(f"target column {series.name!r}: no labels")
        uniques = sorted(values.unique().tolist(), key=lambda v: (str(type(v)), v))
        self.classes_ = [_json_scalar(v) for v in uniques]
        if len(self.classes_) < 2:
            raise DataError(f"target column {series.name!r}: only one class ({self.classes_[0]!r}); need 2 or more")
        return self

    def transform(self, series: pd.Series) -> np.ndarray:
        index = {str(c): i for i, c in enumerate(self.classes_ or [])}
        keys = series.map(lambda v: str(_json_scalar(v)))
        unknown = ~keys.isin(list(index))
        if unknown.any():
            raise DataError(
                f"target column {series.name!r}: label {series[unknown].iloc[0]!r} was not seen in training "
                f"(row {int(np.flatnonzero(unknown.to_numpy())[0]) + 1}); known: {self.classes_}"
            )
        return keys.map(index).to_numpy(dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "label", "classes_": self.classes_}


LABEL_SEPARATOR = "|"


def label_set(value: Any) -> list[str]:
    """One multi-label target cell as its labels: a list (JSONL) or text joined by `|` ("a|c"); empty → []."""
    if isinstance(value, list | tuple | np.ndarray):
        return sorted({str(v).strip() for v in value if str(v).strip()})
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return sorted({part.strip() for part in str(value).split(LABEL_SEPARATOR) if part.strip()})


class LabelSetEncoder:
    """Multi-label targets (a set of labels per row) ↔ N×K 0/1 rows, one column per label seen in training."""

    def __init__(self) -> None:
        self.classes_: list[str] | None = None

    def fit(self, series: pd.Series) -> LabelSetEncoder:
        seen = sorted({label for value in series for label in label_set(value)})
        if len(seen) < 2:
            raise DataError(
                f"target column {series.name!r}: {len(seen)} distinct label(s) ({seen}); a multilabel target "
                f'needs 2 or more, written as a list (JSONL) or joined by {LABEL_SEPARATOR!r} ("a|c")'
            )
        self.classes_ = seen
        return self

    def transform(self, series: pd.Series) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.classes_ or [])}
        rows = np.zeros((len(series), len(index)), dtype=np.float32)
        for row, value in enumerate(series):
            for label in label_set(value):
                if label not in index:
                    raise DataError(
                        f"target column {series.name!r}: label {label!r} was not seen in training (row {row + 1}); "
                        f"known: {self.classes_}"
                    )
                rows[row, index[label]] = 1.0
        return rows

    def to_json(self) -> dict[str, Any]:
        return {"kind": "label_set", "classes_": self.classes_}


class ValueScaler:
    """Regression targets are standardized for training and mapped back for predictions."""

    def __init__(self) -> None:
        self.mean_: float | None = None
        self.std_: float = 1.0

    def fit(self, series: pd.Series) -> ValueScaler:
        values = pd.to_numeric(series, errors="coerce")
        if values.isna().all():
            raise DataError(f"target column {series.name!r}: regression needs numeric values")
        self.mean_, self.std_ = float(values.mean()), float(values.std()) or 1.0
        return self

    def transform(self, series: pd.Series) -> np.ndarray:
        values = pd.to_numeric(series, errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0]) + 1
            raise DataError(f"target column {series.name!r}: non-numeric or missing value at row {row}")
        return ((values.to_numpy(dtype=np.float64) - self.mean_) / self.std_).astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.std_ + self.mean_  # type: ignore[operator]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "scale", "mean_": self.mean_, "std_": self.std_}


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ----------------------------------------------------------------------------- input spec
@dataclass(frozen=True)
class InputSpec:
    """What the model sees: sizes of each input group, derived from the fitted preprocessing."""

    numeric_dim: int = 0
    category_cardinalities: tuple[int, ...] = ()
    category_embedding_dims: tuple[int | None, ...] = ()
    text_vocab_size: int = 0
    text_length: int = 0
    text_tokenizer: str = ""  # word, char, or hf (a pretrained encoder's ids)
    image_shape: tuple[int, int, int] | None = None  # C, H, W
    audio_shape: tuple[int, int, int] | None = None  # 1, bands, frames

    @property
    def kinds(self) -> set[str]:
        kinds = set()
        if self.numeric_dim or self.category_cardinalities:
            kinds.add("tabular")
        if self.text_vocab_size:
            kinds.add("text")
        if self.image_shape:
            kinds.add("image")
        if self.audio_shape:
            kinds.add("audio")
        return kinds


class Preprocessor:
    """Feature encoders + target encoder; `transform` gives numpy arrays grouped by input kind."""

    def __init__(self, task: str, target: str | None, encoders: list[Any], target_encoder: Any) -> None:
        self.task, self.target, self.encoders, self.target_encoder = task, target, encoders, target_encoder

    @property
    def feature_names(self) -> list[str]:
        return [e.name for e in self.encoders]

    @property
    def classes(self) -> list[Any]:
        return (
            list(self.target_encoder.classes_) if predicts_labels(self.task) or predicts_label_sets(self.task) else []
        )

    @property
    def output_dim(self) -> int:
        if predicts_label_sets(self.task):
            return len(self.classes)
        if not predicts_labels(self.task):
            return 1
        return 1 if len(self.classes) == 2 else len(self.classes)

    def input_spec(self) -> InputSpec:
        by_kind: dict[str, list[Any]] = {}
        for encoder in self.encoders:
            by_kind.setdefault(encoder.kind, []).append(encoder)
        text = by_kind.get("text", [None])[0]
        image = by_kind.get("image", [None])[0]
        audio = by_kind.get("audio", [None])[0]
        return InputSpec(
            numeric_dim=len(by_kind.get("numeric", [])),
            category_cardinalities=tuple(e.cardinality for e in by_kind.get("category", [])),
            category_embedding_dims=tuple(e.embedding_dim for e in by_kind.get("category", [])),
            text_vocab_size=len(text.vocabulary_) if text else 0,
            text_length=text.max_length if text else 0,
            text_tokenizer=text.tokenizer if text else "",
            image_shape=(image.channels_, *image.size_) if image else None,
            audio_shape=(1, audio.bands, audio.n_frames) if audio else None,
        )

    def transform_inputs(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        missing = [n for n in self.feature_names if n not in frame.columns]
        if missing:
            hint = did_you_mean(missing[0], frame.columns)
            raise DataError(f"input column {missing[0]!r} is missing{hint}; the model needs {self.feature_names}")
        groups: dict[str, list[np.ndarray]] = {}
        for encoder in self.encoders:
            groups.setdefault(encoder.kind, []).append(encoder.transform(frame[encoder.name]))
        inputs: dict[str, np.ndarray] = {}
        if "numeric" in groups:
            inputs["numeric"] = np.stack(groups["numeric"], axis=1)
        if "category" in groups:
            inputs["category"] = np.stack(groups["category"], axis=1)
        if "text" in groups:
            inputs["text"] = groups["text"][0]
        if "image" in groups:
            inputs["image"] = groups["image"][0]
        if "audio" in groups:
            inputs["audio"] = groups["audio"][0]
        return inputs

    def transform_target(self, frame: pd.DataFrame) -> np.ndarray:
        if self.target not in frame.columns:
            raise DataError(f"target column {self.target!r} is missing{did_you_mean(str(self.target), frame.columns)}")
        return self.target_encoder.transform(frame[self.target])

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "target": self.target,
            "target_encoder": self.target_encoder.to_json(),
            "features": [{"name": e.name, "type": e.kind, "state": e.to_json()} for e in self.encoders],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessor:
        encoders = [encoder_from_json(f["type"], f["name"], f["state"]) for f in data["features"]]
        state = data["target_encoder"]
        target_encoder: Any = {"label": LabelEncoder, "label_set": LabelSetEncoder}.get(state["kind"], ValueScaler)()
        for key, value in state.items():
            if key.endswith("_"):
                setattr(target_encoder, key, value)
        return cls(data["task"], data["target"], encoders, target_encoder)


def resolve_features(config: RunConfig, frame: pd.DataFrame) -> list[FeatureSpec]:
    """The configured features, or inferred ones; every named column must exist."""
    target = config.data.target
    if target is None:
        raise DataError("data.target: required for classification and regression")
    if target not in frame.columns:
        raise DataError(
            f"data.target: column {target!r} not found{did_you_mean(target, frame.columns)}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    features = list(config.features or infer_features(frame, target, config.data.drop))
    for feature in features:
        if feature.name not in frame.columns:
            raise DataError(f"features: column {feature.name!r} not found{did_you_mean(feature.name, frame.columns)}")
        if feature.name == target:
            raise DataError(f"features: {target!r} is the target and cannot also be an input")
    for kind in ("text", "image", "audio"):
        named = [f.name for f in features if f.type == kind]
        if len(named) > 1:
            raise DataError(f"features: at most one {kind} feature is supported, got {named}")
    if not features:
        raise DataError("features: the data has no input columns besides the target")
    return features


def fit_preprocessor(config: RunConfig, frame: pd.DataFrame) -> Preprocessor:
    features = resolve_features(config, frame)
    encoders = [encoder_from_config(f).fit(frame[f.name]) for f in features]
    target_encoder: Any = LabelEncoder() if predicts_labels(config.task) else ValueScaler()
    if predicts_label_sets(config.task):
        target_encoder = LabelSetEncoder()
    target_encoder.fit(frame[config.data.target])
    return Preprocessor(config.task, config.data.target, encoders, target_encoder)


def apply_column_policies(frame: pd.DataFrame, drop: list[str], hashed: list[str]) -> pd.DataFrame:
    """Drop columns and replace hashed ones by a stable digest, the same at train and predict."""
    import hashlib

    frame = frame.drop(columns=[c for c in drop if c in frame.columns])
    for column in hashed:
        if column in frame.columns:
            frame[column] = frame[column].map(
                lambda v: hashlib.sha256(str(v).encode()).hexdigest()[:16] if pd.notna(v) else v
            )
    return frame
