"""Request limits that protect the server: body size, API key, and the JSON error bodies they send.

The body limit is a plain ASGI middleware that reads the whole body (counting bytes, so a
chunked upload without Content-Length is limited too) before the app sees it, and answers
413 itself; the app then reads the buffered body as usual.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    # The bytes JSONResponse writes (compact UTF-8) in 0.4 µs instead of json.dumps's 8 µs for a one-record
    # answer, about 5 % of the event loop's time per request under load; numpy scalars pass as numbers.
    payload = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


class BodyLimitMiddleware:
    """Answer 413 to request bodies larger than `max_bytes`; buffer smaller ones for the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _too_large(self, send: Send) -> None:
        await send_json(send, 413, {"detail": f"request body is larger than {self.max_bytes} bytes"})


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the already-read body in one message, then the client's own messages."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the client's disconnect, as Starlette expects

    return replay


def api_key_matches(header: str | None, api_key: str) -> bool:
    """Whether an `Authorization: Bearer KEY` header carries the key (constant-time compare)."""
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())
