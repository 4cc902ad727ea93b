"""Check JSON records against a run's training columns before they reach the model.

Every problem is reported at once, each naming the row and the field, in FastAPI's
validation-error shape (`loc`, `msg`, `type`), so a client sees a 422 that says what to fix
instead of a 500 from deep inside pandas or torch. Images arrive as nested lists of pixel
values or as `data:image/...;base64,` URLs; file paths are never read from requests.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelforge.errors import did_you_mean

MAX_REPORTED_PROBLEMS = 20
MAX_IMAGE_PIXELS = 4096 * 4096
SUPPORTED_KINDS = ("numeric", "category", "text", "image")


@dataclass(frozen=True)
class FieldProblem:
    """A problem in one record's field (row None: a field of the request itself, such as `k`)."""

    row: int | None
    field: str | None
    message: str
    kind: str = "value_error"

    def as_detail(self) -> dict[str, Any]:
        loc: list[Any] = ["body"] if self.row is None else ["body", "records", self.row]
        if self.field is not None:
            loc.append(self.field)
        return {"loc": loc, "msg": self.message, "type": self.kind}


class RecordsError(Exception):
    """Records do not fit the model; `problems` lists each as row, field, message."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        first = problems[0]
        where = "request" if first.row is None else f"records[{first.row}]"
        where += f".{first.field}" if first.field else ""
        super().__init__(f"{where}: {first.message}")
        self.problems = problems


@dataclass(frozen=True)
class RecordSchema:
    """The columns a model reads (name → encoder kind) and the columns it tolerates and ignores."""

    features: dict[str, str]
    ignored: frozenset[str] = frozenset()

    @classmethod
    def from_preprocessor(cls, preprocessor: Any, ignored: set[str]) -> RecordSchema:
        return cls({e.name: e.kind for e in preprocessor.encoders}, frozenset(ignored))

    def validate(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Cleaned records (images as float32 arrays, only model columns) or RecordsError."""
        problems: list[FieldProblem] = []
        cleaned: list[dict[str, Any]] = []
        for row, record in enumerate(records):
            cleaned.append(self._validate_record(row, record, problems))
            if len(problems) >= MAX_REPORTED_PROBLEMS:
                break
        if problems:
            raise RecordsError(problems[:MAX_REPORTED_PROBLEMS])
        return cleaned

    def _validate_record(self, row: int, record: Any, problems: list[FieldProblem]) -> dict[str, Any]:
        if not isinstance(record, dict):
            problems.append(FieldProblem(row, None, f"expected an object of columns, got {type(record).__name__}"))
            return {}
        for key in record:
            if key not in self.features and key not in self.ignored:
                hint = did_you_mean(str(key), self.features)
                problems.append(
                    FieldProblem(row, str(key), f"unknown column{hint}; the model reads {list(self.features)}")
                )
        out: dict[str, Any] = {}
        for name, kind in self.features.items():
            if name not in record:
                problems.append(FieldProblem(row, name, f"missing ({kind} column)", "missing"))
                continue
            try:
                out[name] = CHECKS[kind](record[name])
            except ValueError as exc:
                problems.append(FieldProblem(row, name, str(exc)))
        return out


# ----------------------------------------------------------------------------- per kind
def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_numeric(value: Any) -> float:
    if value is None:
        return math.nan  # imputed like a missing training value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number or null, got {_describe(value)}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return float(value)


def check_category(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a category (string, integer or null), got {value}")
        return int(value) if value.is_integer() else value
    raise ValueError(f"expected a category (string, integer or null), got {_describe(value)}")


def check_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"expected a string or null, got {_describe(value)}")


def check_image(value: Any) -> np.ndarray:
    if isinstance(value, str):
        if value.startswith("data:image/"):
            return _decode_data_url(value)
        raise ValueError(
            "expected pixels as a nested list (H×W, H×W×C or C×H×W) or a data:image/...;base64 URL; "
            "file paths are not read from requests"
        )
    if not isinstance(value, list):
        raise ValueError(f"expected pixels as a nested list, got {_describe(value)}")
    try:
        array = np.asarray(value)
    except ValueError:
        raise ValueError("pixel rows have different lengths") from None
    if array.dtype.kind not in "iuf":
        raise ValueError(f"expected numeric pixel values, got {array.dtype.kind!r} values such as {_describe(value)}")
    if array.ndim not in (2, 3) or min(array.shape) == 0:
        raise ValueError(f"expected a 2-D or 3-D array of pixels, got shape {list(array.shape)}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused just below
        array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError("pixel values must be finite")
    return array


def _decode_data_url(value: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    header, _, payload = value.partition(",")
    if not header.endswith(";base64"):
        raise ValueError("image data URLs must be base64-encoded (data:image/png;base64,...)")
    try:
        raw = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"image is {image.width}×{image.height}; at most {MAX_IMAGE_PIXELS} pixels")
            image.load()
            mode = "L" if image.mode in ("L", "1", "I", "I;16", "F") else "RGB"
            return np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot decode the image data URL ({exc.__class__.__name__})") from None


CHECKS = {"numeric": check_numeric, "category": check_category, "text": check_text, "image": check_image}
