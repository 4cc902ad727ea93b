"""Check JSON records against a run's training columns before they reach the model.

Every problem is reported at once, each naming the row and the field, in FastAPI's
validation-error shape (`loc`, `msg`, `type`), so a client sees a 422 that says what to fix
instead of a 500 from deep inside pandas or torch. Images arrive as nested lists of pixel
values or as `data:image/...;base64,` URLs; file paths are never read from requests.

The work is bounded whatever comes in: at most MAX_REPORTED_PROBLEMS problems, a record's keys
read only up to its MAX_UNKNOWN_COLUMNS-th unknown one (difflib suggestions for the first few),
names and values echoed cut short, and `parse_body_in_steps` reads a large body a record or a
value at a time so that no single C call holds the GIL for long.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelforge.errors import did_you_mean

MAX_REPORTED_PROBLEMS = 20
MAX_UNKNOWN_COLUMNS = 5  # reported per record; the scan of a record's keys stops there
MAX_SUGGESTED_COLUMNS = 3  # unknown columns per record that get a "did you mean" (difflib is slow)
MAX_NAME_CHARS = 100  # of an unknown column's name, as echoed back
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
        unknown = 0
        for key in record:  # stops at the first few unknown keys: a record may carry 300,000 of them
            if key not in self.features and key not in self.ignored:
                name = short_name(key)
                hint = did_you_mean(name, self.features) if unknown < MAX_SUGGESTED_COLUMNS else ""
                problems.append(FieldProblem(row, name, f"unknown column{hint}; the model reads {list(self.features)}"))
                unknown += 1
                if unknown >= MAX_UNKNOWN_COLUMNS:
                    break
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


def short_name(key: Any) -> str:
    """A column name as echoed in an error: at most MAX_NAME_CHARS characters (a key may be a megabyte long)."""
    text = str(key)
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 3] + "..."


# ----------------------------------------------------------------------------- large bodies
class BodyError(ValueError):
    """The body is not the JSON text of an object; `position` is where reading stopped."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


_SCAN = json.JSONDecoder().scan_once  # one JSON value from a position, in C: (value, end)
_BLANK = re.compile(r"[ \t\n\r]*")
MIN_WINDOW_CHARS, MAX_WINDOW_CHARS = 4096, 65536
_STAND_INS = {"[": [], '"': "", "t": True, "f": False, "n": None}  # a record that is not an object: its kind


def parse_body_in_steps(body: bytes, known: frozenset[str], max_records: int) -> dict[str, Any]:
    """A predict body's top-level object, parsed one JSON value at a time (for a worker thread).

    A C parser holds the GIL for all of the text it parses: 200 ms for one record of 300,000
    keys (4 MB), during which the event loop answers nothing. Here a record that fits in a window
    of a few KB is parsed in one C call, a longer one a key and a column's value at a time, so the
    loop gets the GIL back within a few ms (a single value, such as an image's pixels, is still
    parsed in one call). A record stops being read
    at its MAX_UNKNOWN_COLUMNS-th key outside `known`, and nothing after it, or after a record
    that is not an object (kept as an empty stand-in of its kind), or after `max_records` + 1
    records, is read at all: the checks' 422 for what was read is the answer.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8 ({exc.reason})", exc.start) from None
    return _StepParser(text, known, max_records).document()


class _StepParser:
    def __init__(self, text: str, known: frozenset[str], max_records: int) -> None:
        self.text, self.known, self.max_records = text, known, max_records
        self.stopped = False  # a record settles the 422: read no further
        self.unknown = 0  # keys outside `known` in the record being read
        self.window = MIN_WINDOW_CHARS  # a record this long is parsed in one C call

    def document(self) -> dict[str, Any]:
        top, pos = self._object(self._blank(0), self._top_member)
        if not self.stopped and self._blank(pos) != len(self.text):
            raise BodyError("extra data after the JSON object", pos)
        return top

    def _object(self, pos: int, member: Callable[[str, int], tuple[Any, int]]) -> tuple[dict[str, Any], int]:
        text = self.text
        if not text.startswith("{", pos):
            raise BodyError("expected an object", pos)
        out: dict[str, Any] = {}
        pos = self._blank(pos + 1)
        if text.startswith("}", pos):
            return out, pos + 1
        while True:
            if not text.startswith('"', pos):
                raise BodyError("expected a key in double quotes", pos)
            key, pos = self._value(pos)
            pos = self._blank(pos)
            if not text.startswith(":", pos):
                raise BodyError("expected ':' after a key", pos)
            out[key], pos = member(key, self._blank(pos + 1))
            if self.stopped:
                return out, pos
            pos = self._blank(pos)
            if text.startswith(",", pos):
                pos = self._blank(pos + 1)
            elif text.startswith("}", pos):
                return out, pos + 1
            else:
                raise BodyError("expected ',' or '}'", pos)

    def _top_member(self, key: str, pos: int) -> tuple[Any, int]:
        return self._records(pos) if key == "records" and self.text.startswith("[", pos) else self._value(pos)

    def _records(self, pos: int) -> tuple[list[Any], int]:
        text = self.text
        records: list[Any] = []
        pos = self._blank(pos + 1)
        if text.startswith("]", pos):
            return records, pos + 1
        while True:
            if not text.startswith("{", pos):
                records.append(_STAND_INS.get(text[pos : pos + 1], 0))
                self.stopped = True
                return records, pos
            record, end = self._small_record(pos)
            if record is None:  # larger than the window: member by member
                self.unknown = 0
                record, end = self._object(pos, self._column)
            pos = end
            records.append(record)
            if len(records) > self.max_records:
                self.stopped = True
            if self.stopped:
                return records, pos
            pos = self._blank(pos)
            if text.startswith(",", pos):
                pos = self._blank(pos + 1)
            elif text.startswith("]", pos):
                return records, pos + 1
            else:
                raise BodyError("expected ',' or ']' after a record", pos)

    def _small_record(self, pos: int) -> tuple[dict[str, Any] | None, int]:
        """The record at `pos` in one C call when it ends within the window (a few KB), else None."""
        piece = self.text[pos : pos + self.window]  # its parse costs at most the window's length
        try:
            record, size = _SCAN(piece, 0)
        except (StopIteration, ValueError, RecursionError):
            return None, pos  # cut off by the window, or broken: the member-by-member reading says which
        self.window = min(MAX_WINDOW_CHARS, max(MIN_WINDOW_CHARS, 4 * size))
        if not self.known.issuperset(record):
            self.stopped = sum(key not in self.known for key in record) >= MAX_UNKNOWN_COLUMNS
        return record, pos + size

    def _column(self, key: str, pos: int) -> tuple[Any, int]:
        if key not in self.known:
            self.unknown += 1
            self.stopped = self.unknown >= MAX_UNKNOWN_COLUMNS
        return self._value(pos)

    def _value(self, pos: int) -> tuple[Any, int]:
        try:
            return _SCAN(self.text, pos)  # type: ignore[no-any-return]
        except StopIteration:
            raise BodyError("expected a JSON value", pos) from None
        except RecursionError:
            raise BodyError("nested too deeply", pos) from None
        except ValueError as exc:  # an integer of more than 4,300 digits
            raise BodyError(str(exc).split(":")[0], pos) from None

    def _blank(self, pos: int) -> int:
        return _BLANK.match(self.text, pos).end()  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- per kind
def describe(value: Any) -> str:
    """A short repr of a received value for an error message (never fails, never long)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"  # repr of a 5,000-digit integer raises
    if isinstance(value, list | dict | str) and len(value) > 40:
        value = value[:40] if not isinstance(value, dict) else dict(list(value.items())[:5])
    try:
        text = repr(value)
    except ValueError:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def check_numeric(value: Any) -> float:
    if value is None:
        return math.nan  # imputed like a missing training value
    if isinstance(value, str):  # as the training table wrote it: "$1,234.50", "12%", "?" for missing
        import pandas as pd

        from modelforge.data.features import missing_markers, numbers

        text = pd.Series([value], dtype=object)
        number = float(numbers(text).iloc[0])
        if math.isnan(number) and not bool(missing_markers(text).iloc[0]):
            raise ValueError(f"expected a number or null, got {describe(value)}")
        return number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number or null, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float's range (10**400)
        raise ValueError(f"expected a number within ±1.8e308, got {describe(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value}")
    return number


def check_category(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a category (string, integer or null), got {value}")
        return int(value) if value.is_integer() else value
    raise ValueError(f"expected a category (string, integer or null), got {describe(value)}")


def check_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"expected a string or null, got {describe(value)}")


def check_image(value: Any) -> np.ndarray:
    if isinstance(value, str):
        if value.startswith("data:image/"):
            return _decode_data_url(value)
        raise ValueError(
            "expected pixels as a nested list (H×W, H×W×C or C×H×W) or a data:image/...;base64 URL; "
            "file paths are not read from requests"
        )
    if not isinstance(value, list):
        raise ValueError(f"expected pixels as a nested list, got {describe(value)}")
    try:
        array = np.asarray(value)
    except ValueError:
        raise ValueError("pixel rows have different lengths") from None
    if array.dtype.kind not in "iuf":
        raise ValueError(f"expected numeric pixel values, got {array.dtype.kind!r} values such as {describe(value)}")
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
