"""Record validation: each wrong field is named with its row, every problem reported at once."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from modelforge.serve.records import (
    MAX_UNKNOWN_COLUMNS,
    BodyError,
    RecordSchema,
    RecordsError,
    describe,
    parse_body_in_steps,
)

SCHEMA = RecordSchema(
    {"age": "numeric", "city": "category", "review": "text", "photo": "image"}, ignored=frozenset({"label"})
)
GOOD = {"age": 31.5, "city": "Oslo", "review": "fine food", "photo": [[0, 1], [2, 3]]}


def problems(records: list) -> list[tuple[int, str | None, str]]:
    with pytest.raises(RecordsError) as info:
        SCHEMA.validate(records)
    return [(p.row, p.field, p.message) for p in info.value.problems]


def test_good_records_are_cleaned_and_the_target_is_ignored() -> None:
    cleaned = SCHEMA.validate([GOOD, {**GOOD, "age": None, "city": 3, "review": None, "label": "yes"}])
    assert cleaned[0]["age"] == 31.5 and np.isnan(cleaned[1]["age"])
    assert cleaned[1]["city"] == 3 and "label" not in cleaned[1]
    assert cleaned[0]["photo"].dtype == np.float32 and cleaned[0]["photo"].shape == (2, 2)


def test_every_problem_names_row_and_field() -> None:
    found = problems([GOOD, {**GOOD, "age": "old", "review": 5}, {"agee": 1, "city": "x", "review": "", "photo": []}])
    fields = {(row, field) for row, field, _ in found}
    assert fields == {(1, "age"), (1, "review"), (2, "agee"), (2, "age"), (2, "photo")}
    message = dict(((r, f), m) for r, f, m in found)
    assert "did you mean age?" in message[(2, "agee")]
    assert "expected a number" in message[(1, "age")]


def test_numbers_as_a_table_writes_them_are_read_as_training_read_them() -> None:
    """A record copied from the training CSV may carry "$1,234.50", "12%" or "?": read as `predict` reads them."""
    cleaned = SCHEMA.validate([{**GOOD, "age": "$1,234.50"}, {**GOOD, "age": "12%"}, {**GOOD, "age": "?"}])
    assert [cleaned[0]["age"], cleaned[1]["age"]] == [1234.5, 12.0] and np.isnan(cleaned[2]["age"])


@pytest.mark.parametrize(
    ("photo", "expected"),
    [
        ("/etc/passwd", "file paths are not read"),
        ([[1, 2], [3]], "different lengths"),
        ([["a", "b"]], "numeric pixel values"),
        ([1, 2, 3], "2-D or 3-D"),
        ([[1e39, 0]], "finite"),
        ("data:image/png;base64,!!!", "cannot decode"),
        ({"pixels": 1}, "nested list"),
    ],
)
def test_bad_images_are_rejected_with_a_reason(photo: object, expected: str) -> None:
    [(row, field, message)] = problems([{**GOOD, "photo": photo}])
    assert (row, field) == (0, "photo") and expected in message


def test_image_data_url_is_decoded() -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 6), 255, dtype=np.uint8)).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    [record] = SCHEMA.validate([{**GOOD, "photo": url}])
    assert record["photo"].shape == (4, 6) and float(record["photo"].max()) == 1.0


def test_non_finite_numbers_and_non_objects_are_rejected() -> None:
    found = problems([{**GOOD, "age": float("nan")}, "not a record", {**GOOD, "city": [1]}])
    assert [(r, f) for r, f, _ in found] == [(0, "age"), (1, None), (2, "city")]


# ----------------------------------------------------------------------------- large bodies, step by step
KNOWN = frozenset({"age", "city", "review", "photo", "label"})


def test_step_parser_reads_what_json_reads() -> None:
    long_review = "x" * 100_000  # longer than the window: read a key and a value at a time
    body = {"k": None, "records": [GOOD, {**GOOD, "review": long_review}, {"age": float("nan")}], "other": [1, {}]}
    text = json.dumps(body).encode()
    parsed = parse_body_in_steps(text, KNOWN, 10)
    assert parsed["records"][1]["review"] == long_review and np.isnan(parsed["records"][2]["age"])
    assert parsed["other"] == [1, {}] and parsed["k"] is None
    assert parse_body_in_steps(b' {"records" : [ ] } \n', KNOWN, 10) == {"records": []}


def test_step_parser_stops_at_a_key_flood_and_at_a_record_that_is_not_an_object() -> None:
    flood = {"records": [GOOD, {f"junk{i}": 0 for i in range(300_000)}, GOOD]}
    parsed = parse_body_in_steps(json.dumps(flood).encode(), KNOWN, 10)
    assert len(parsed["records"]) == 2 and len(parsed["records"][1]) == MAX_UNKNOWN_COLUMNS
    assert parse_body_in_steps(b'{"records": [{}, [1, 2], {}]}', KNOWN, 10)["records"] == [{}, []]
    assert len(parse_body_in_steps(b'{"records": [' + b",".join([b"{}"] * 50) + b"]}", KNOWN, 10)["records"]) == 11


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"[1]",
        b'{"records": [{"a": 1,}]}',
        b'{"records": [{"a" 1}]}',
        b'{"records": [1' + b"0" * 5000 + b"]}",
        b'{"records": [{"a": ' + b"[" * 5000 + b"]}",
        b'{"a": 1} x',
        b'{"a": "\xff"}',
        b'{"records": [{"a": 1}',
    ],
)
def test_step_parser_refuses_broken_json_with_a_position(text: bytes) -> None:
    if text.startswith(b'{"records": [1'):
        assert parse_body_in_steps(text, KNOWN, 10)["records"] == [0]  # not an object: not even read
        return
    with pytest.raises(BodyError) as info:
        parse_body_in_steps(text, KNOWN, 10)
    assert info.value.position >= 0


def test_huge_integers_are_refused_not_overflowed() -> None:
    [(row, field, message)] = problems([{**GOOD, "age": 10**400}])
    assert (row, field) == (0, "age") and "±1.8e308" in message
    assert describe(10**5000) == "an integer of 16610 bits"


def test_a_key_flood_is_checked_briefly() -> None:
    found = problems([{f"junk{i}": 0 for i in range(300_000)}])
    unknown = [p for p in found if "unknown column" in p[2]]
    assert len(unknown) == MAX_UNKNOWN_COLUMNS
