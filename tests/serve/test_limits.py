"""`send_json`: the bytes FastAPI's JSONResponse would write, from plain and numpy values."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np

from modelforge.serve.limits import send_json


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
