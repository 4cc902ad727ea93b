"""`send_json` and `json_bytes`: the bytes FastAPI's JSONResponse would write, never failing; Host names."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from modelforge.serve.limits import default_allowed_hosts, host_name, is_loopback, json_bytes, send_json


def sent(body: dict[str, Any], headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(message)

    asyncio.run(send_json(send, 200, body, headers))
    return messages


def test_body_is_compact_utf8_json_with_its_length_and_headers() -> None:
    body = {"predictions": [{"label": "été", "probabilities": {"a": 0.125, "b": 0.875}}]}
    start, content = sent(body, {"Retry-After": "1"})
    expected = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert content["body"] == expected
    assert dict(start["headers"])[b"content-length"] == str(len(expected)).encode()
    assert dict(start["headers"])[b"retry-after"] == b"1"


def test_numpy_scalars_are_written_as_numbers() -> None:
    _, content = sent({"value": np.float32(0.5), "count": np.int64(3), "p": np.float64(0.25)})
    assert json.loads(content["body"]) == {"value": 0.5, "count": 3, "p": 0.25}


@pytest.mark.parametrize(
    ("header", "name"),
    [("127.0.0.1:8000", "127.0.0.1"), ("LocalHost", "localhost"), ("[::1]:8000", "::1"), ("::1", "::1"), ("", "")],
)
def test_host_name_drops_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_a_server_answers_to_the_names_of_the_address_it_is_bound_to() -> None:
    assert set(default_allowed_hosts("127.0.0.1") or ()) == {"127.0.0.1", "localhost", "::1"}
    assert default_allowed_hosts("10.0.0.5") == ("10.0.0.5",)
    assert default_allowed_hosts("0.0.0.0") is None and default_allowed_hosts("::") is None
    assert is_loopback("127.0.0.2") and is_loopback("localhost") and not is_loopback("example.com")


def test_unencodable_values_become_printable_json() -> None:
    body = {"detail": [{"loc": ["body", "\ud800"], "msg": "bad \udfff", "big": 10**400, "nan": float("nan")}]}
    decoded = json.loads(json_bytes(body))
    assert decoded["detail"][0]["loc"] == ["body", "\\ud800"] and decoded["detail"][0]["nan"] is None
    assert decoded["detail"][0]["big"] == "an integer of 1329 bits"
