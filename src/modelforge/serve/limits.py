"""Request limits that protect the server, checked before the app reads a byte of the body.

`RequestGuard` is a plain ASGI middleware that, in this order, answers:

    400  a Host header the server does not answer to (DNS rebinding: a web page whose name
         now points at 127.0.0.1 would otherwise reach a loopback server through the browser)
    401  a missing or wrong API key on /v1 and /metrics (before the body is buffered)
    415  a POST whose Content-Type is not application/json (a cross-site form or text/plain
         "simple" request, which a browser sends without asking the server first)
    413  a body over the limit (counted while reading, so chunked uploads are limited too)
    408  a body that does not arrive within the body timeout (slow uploads hold no memory for long)

then hands the buffered body to the app. Every answer, the app's included, gets the usual
security headers; HTML pages get a Content-Security-Policy that allows only the server itself.
The JSON error bodies are written by `json_bytes`, which never fails: input that JSON cannot
carry (lone surrogates, NaN, integers beyond 64 bits) is made printable instead of crashing
the answer into a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
SMALL_BODY_BYTES = 256 * 1024  # generate and images bodies: a 20,000-character prompt, escaped, fits
MAX_ECHOED_CHARS = 100  # of a key or value named in an error (a 1 MB key is not sent back)
POST_ROUTES = re.compile(r"^/v1/models/[^/]+/(predict|generate|images)$")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# The playground and the API docs are one HTML page each with inline script and style, and
# talk to this server only; nothing may frame them.
PAGE_POLICY = (
    b"default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    b"script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    b"form-action 'none'"
)


# ----------------------------------------------------------------------------- JSON answers
def json_bytes(body: Any) -> bytes:
    """Compact UTF-8 JSON of `body` (numpy scalars as numbers, NaN as null); never raises for odd input."""
    # orjson writes the bytes JSONResponse writes in 0.4 µs instead of json.dumps's 8 µs for a one-record
    # answer, about 5 % of the event loop's time per request under load.
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except (orjson.JSONEncodeError, TypeError):
        return orjson.dumps(encodable(body), option=orjson.OPT_SERIALIZE_NUMPY)


def encodable(value: Any) -> Any:
    """`value` with every part JSON can carry: printable strings, finite numbers, 64-bit integers."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # as orjson writes it
    if isinstance(value, dict):
        return {printable(str(k)): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    return printable(str(value))


def printable(text: str, limit: int | None = None) -> str:
    """`text` as valid UTF-8 (lone surrogates written as \\udXXX escapes), cut to `limit` characters."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class JsonAnswer(JSONResponse):
    """A JSON response written by `json_bytes` (the app's default response class)."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def validation_detail(errors: Iterable[dict[str, Any]], prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """pydantic's errors as `{loc, msg, type}` without the input they came with (it may not be encodable)."""
    detail = []
    for error in errors:
        loc = [part if isinstance(part, int) else printable(str(part), MAX_ECHOED_CHARS) for part in error["loc"]]
        detail.append({"loc": [*prefix, *loc], "msg": printable(str(error["msg"]), 500), "type": error["type"]})
    return detail


async def send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    payload = json_bytes(body)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


# ----------------------------------------------------------------------------- the guard
@dataclass(frozen=True)
class RouteLabel:
    """What MetricsMiddleware reads from `scope["route"]` for requests answered before routing."""

    path: str


@dataclass(frozen=True)
class GuardSettings:
    """What `RequestGuard` checks (see the module docstring)."""

    max_body_bytes: int
    body_timeout_s: float
    api_key: str | None = None
    allowed_hosts: tuple[str, ...] | None = None  # None: any Host header (the app does not know its address)
    guarded_prefixes: tuple[str, ...] = ("/v1/", "/metrics")
    large_body_paths: tuple[str, ...] = ()  # paths that take bodies up to max_body_bytes; others SMALL_BODY_BYTES
    pages: tuple[str, ...] = ("/", "/docs")  # HTML pages: they get the Content-Security-Policy
    post_routes: re.Pattern[str] = POST_ROUTES  # POSTs to other paths are the router's 404 or 405


class RequestGuard:
    """Host, API key, Content-Type, body size and body time checks before the app (module docstring)."""

    def __init__(self, app: ASGIApp, settings: GuardSettings) -> None:
        self.app, self.settings = app, settings
        hosts = settings.allowed_hosts
        self.allowed = None if hosts is None or "*" in hosts else {host_name(h) for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        send = self._with_security_headers(send, page=path in self.settings.pages)
        headers = dict(scope.get("headers") or [])
        refusal = self._refusal(scope, path, headers)
        if refusal is not None:
            status, detail, extra = refusal
            route = self.settings.post_routes.match(path)
            if route is not None:  # counted under its route in /metrics, as the route's own 401 was
                scope["route"] = RouteLabel(f"/v1/models/{{name}}/{route.group(1)}")
            await send_json(send, status, {"detail": detail}, {"connection": "close", **extra})
            return
        limit = self.settings.max_body_bytes
        if path not in self.settings.large_body_paths:
            limit = min(limit, SMALL_BODY_BYTES)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(send, limit)
            return
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):
                body = await read_body(receive, limit)
        except TimeoutError:
            detail = f"the request body did not arrive within {self.settings.body_timeout_s:g} s"
            await send_json(send, 408, {"detail": detail}, {"connection": "close"})
            return
        except BodyTooLargeError:
            await self._too_large(send, limit)
            return
        if body is None:
            return  # the client went away
        await self.app(scope, replaying(body, receive), send)

    def _refusal(self, scope: Scope, path: str, headers: dict[bytes, bytes]) -> tuple[int, str, dict] | None:
        if self.allowed is not None:
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                allowed = ", ".join(sorted(self.allowed))
                return 400, f"this server answers to Host {allowed}, not {printable(host, MAX_ECHOED_CHARS)!r}", {}
        api_key = self.settings.api_key
        if api_key is not None and path.startswith(self.settings.guarded_prefixes):
            header = headers.get(b"authorization")
            if not api_key_matches(header.decode("latin-1") if header else None, api_key):
                return 401, "missing or wrong API key", {"www-authenticate": "Bearer"}
        if (
            scope["method"] == "POST"
            and self.settings.post_routes.match(path)
            and not is_json(headers.get(b"content-type", b""))
        ):
            given = headers.get(b"content-type", b"none").decode("latin-1")
            return 415, f"send the body as Content-Type: application/json (got {printable(given, 60)})", {}
        return None

    @staticmethod
    def _with_security_headers(send: Send, page: bool) -> Send:
        extra = [*SECURITY_HEADERS, (b"content-security-policy", PAGE_POLICY)] if page else SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        return send_with_headers

    async def _too_large(self, send: Send, limit: int) -> None:
        await send_json(send, 413, {"detail": f"request body is larger than {limit} bytes"}, {"connection": "close"})


class BodyTooLargeError(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when the client disconnected; BodyTooLargeError past `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


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


def is_json(content_type: bytes) -> bool:
    """Whether a Content-Type header says JSON: application/json, with or without parameters."""
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


def host_name(header: str) -> str:
    """The name in a Host header, without its port: `[::1]:8000` → `::1`, `Example.com:80` → `example.com`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, colon, port = header.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else header


def default_allowed_hosts(bind_host: str) -> tuple[str, ...] | None:
    """The Host names a server bound to `bind_host` answers to; None (any) for a wildcard address."""
    host = bind_host.strip().lower().strip("[]")
    if host in WILDCARD_HOSTS:
        return None
    return (host, *LOOPBACK_NAMES) if is_loopback(host) else (host,)


def is_loopback(host: str) -> bool:
    host = host.strip().lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key_matches(header: str | None, api_key: str) -> bool:
    """Whether an `Authorization: Bearer KEY` header carries the key (constant-time compare)."""
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())
