"""Hostile HTTP requests: every one gets a 4xx with a JSON body, never a 5xx (issue: serve hardening).

One table of requests (unencodable input, huge numbers, key floods, wrong content types, foreign
Host headers, oversized bodies), property-based records from hypothesis, and the checks that
need a live socket: a slow body's 408, the key checked before the body, a stream that waits for
a decoding row timing out, and /healthz answering while a hostile record is checked.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelforge.serve.app import INLINE_VALIDATION_BYTES, ServeSettings, create_app
from modelforge.serve.services import load_services

JSON = {"content-type": "application/json"}
KEY_FLOOD = json.dumps({"records": [{f"c{i}": 0 for i in range(300_000)}]}).encode()  # 4 MB (the issue: 2.9 MB)


@dataclass(frozen=True)
class Hostile:
    name: str
    path: str
    body: bytes
    status: int
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    method: str = "POST"


def raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


PREDICT, TABLE, FILMS = (f"/v1/models/{name}/predict" for name in ("digits", "diabetes", "films"))
GENERATE = "/v1/models/bard/generate"
HOSTILE = [
    # the unencodable echoes that made FastAPI's own 422 a 500
    Hostile("records NaN", PREDICT, b'{"records": [NaN]}', 422),
    Hostile("k Infinity", FILMS, b'{"records": [{"user": "u1"}], "k": Infinity}', 422),
    Hostile("k -Infinity", FILMS, b'{"records": [{"user": "u1"}], "k": -Infinity}', 422),
    Hostile("records lone surrogate", PREDICT, b'{"records": "\\ud800"}', 422),
    Hostile("record key lone surrogate", PREDICT, b'{"records": [{"\\ud800": 1}]}', 422),
    Hostile("record key raw surrogate bytes", PREDICT, raw('{"records": [{"\ud800": 1}]}'), 422),
    Hostile("record value lone surrogate", TABLE, b'{"records": [{"age": "\\udfff"}]}', 422),
    Hostile("extra field NaN", PREDICT, b'{"records": [{"x": [[0]]}], "extra": NaN}', 422),
    Hostile("k surrogate", FILMS, b'{"records": [{"user": "u1"}], "k": "\\ud800"}', 422),
    Hostile("temperature NaN", GENERATE, b'{"prompt": "hi", "temperature": NaN}', 422),
    Hostile("temperature Infinity", GENERATE, b'{"prompt": "hi", "temperature": Infinity}', 422),
    Hostile("temperature -Infinity", GENERATE, b'{"prompt": "hi", "temperature": -Infinity}', 422),
    Hostile("top_p NaN", GENERATE, b'{"prompt": "hi", "top_p": NaN}', 422),
    Hostile("prompt NUL and surrogate", GENERATE, b'{"prompt": "\\u0000\\ud800"}', 422),
    Hostile("prompt lone low surrogate", GENERATE, b'{"prompt": "\\udfff"}', 422),
    Hostile("prompt a list", GENERATE, b'{"prompt": ["hi"]}', 422),
    Hostile("stream a string", GENERATE, b'{"prompt": "hi", "stream": "yes"}', 422),
    # numbers that do not fit
    Hostile("numeric 10**400", TABLE, b'{"records": [{"age": 1' + b"0" * 400 + b"}]}", 422),
    Hostile("numeric -10**400", TABLE, b'{"records": [{"age": -1' + b"0" * 400 + b"}]}", 422),
    Hostile("numeric 5000 digits", TABLE, b'{"records": [{"age": ' + b"9" * 5000 + b"}]}", 422),
    Hostile("numeric 1e400", TABLE, b'{"records": [{"age": 1e400}]}', 422),
    Hostile("pixel 1e400", PREDICT, b'{"records": [{"x": [[1e400, 0]]}]}', 422),
    Hostile("pixel 10**400", PREDICT, b'{"records": [{"x": [[1' + b"0" * 400 + b", 0]]}]}", 422),
    Hostile("seed 10**400", GENERATE, b'{"prompt": "hi", "seed": 1' + b"0" * 400 + b"}", 422),
    Hostile("max_new_tokens 10**30", GENERATE, b'{"prompt": "hi", "max_new_tokens": 1' + b"0" * 30 + b"}", 422),
    Hostile("k 10**30", FILMS, b'{"records": [{"user": "u1"}], "k": 1' + b"0" * 30 + b"}", 422),
    # shapes
    Hostile("deep nesting", PREDICT, b'{"records": [{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}]}", 422),
    Hostile("key flood", TABLE, KEY_FLOOD, 422),
    Hostile("key flood, recommendation run", FILMS, KEY_FLOOD, 422),
    Hostile("one megabyte key", TABLE, b'{"records": [{"' + b"k" * 1_000_000 + b'": 1}]}', 422),
    Hostile("too many records", TABLE, b'{"records": [' + b",".join([b"{}"] * 10_001) + b"]}", 422),
    Hostile("records a number", PREDICT, b'{"records": 5}', 422),
    Hostile("record a list", PREDICT, b'{"records": [[1, 2]]}', 422),
    Hostile("image a broken data URL", PREDICT, b'{"records": [{"x": "data:image/png;base64,AAAA"}]}', 422),
    Hostile("user a list", FILMS, b'{"records": [{"user": [1]}]}', 422),
    Hostile("k for a classifier", PREDICT, b'{"records": [{"x": [[0]]}], "k": 3}', 422),
    Hostile("not JSON", PREDICT, b"{nope", 422),
    Hostile("empty body", PREDICT, b"", 422),
    Hostile("null body", PREDICT, b"null", 422),
    Hostile("invalid UTF-8", PREDICT, b'{"records": [{"x": "\xff\xfe"}]}', 422),
    # cross-site "simple" requests and foreign hosts
    Hostile("text/plain predict", PREDICT, b'{"records": [{"x": [[0]]}]}', 415, {"content-type": "text/plain"}),
    Hostile("form predict", PREDICT, b"records=1", 415, {"content-type": "application/x-www-form-urlencoded"}),
    Hostile("multipart predict", PREDICT, b"--b--", 415, {"content-type": "multipart/form-data; boundary=b"}),
    Hostile("no content type", PREDICT, b'{"records": [{"x": [[0]]}]}', 415, {}),
    Hostile("text/plain generate", GENERATE, b'{"prompt": "hi"}', 415, {"content-type": "text/plain"}),
    Hostile("rebinding Host", PREDICT, b'{"records": [{"x": [[0]]}]}', 400, {**JSON, "host": "evil.example:8000"}),
    Hostile("rebinding Host, GET", "/v1/models", b"", 400, {"host": "attacker.test"}, "GET"),
    Hostile("empty Host", "/metrics", b"", 400, {"host": ""}, "GET"),
    # sizes
    Hostile("predict body over the limit", PREDICT, b'{"records": [' + b" " * 5_000_000 + b"]}", 413),
    Hostile("generate body over 256 KiB", GENERATE, b'{"prompt": "' + b"a" * 300_000 + b'"}', 413),
    Hostile("unknown model, big body", "/v1/models/nope/predict", b'{"records": [' + b" " * 300_000 + b"]}", 413),
]


@pytest.fixture(scope="module")
def hostile_app(digits_run: Path, diabetes_run: Path, gpt_run: Path, recommend_run: Any) -> Any:
    runs = [f"digits={digits_run}", f"diabetes={diabetes_run}", f"bard={gpt_run}", f"films={recommend_run.path}"]
    limits = ServeSettings(max_body_bytes=5_000_000, max_new_tokens=16, allowed_hosts=("127.0.0.1", "localhost"))
    return create_app(load_services(runs), limits)


@pytest.fixture(scope="module")
def client(hostile_app: Any) -> Iterator[TestClient]:
    with TestClient(hostile_app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_the_table_is_long_enough() -> None:
    assert len(HOSTILE) >= 40 and len({h.name for h in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.name for h in HOSTILE])
def test_hostile_request_gets_its_4xx_with_a_json_body(client: TestClient, hostile: Hostile) -> None:
    answer = client.request(hostile.method, hostile.path, content=hostile.body, headers=hostile.headers)
    assert answer.status_code == hostile.status, answer.text[:500]
    detail = answer.json()["detail"]  # valid JSON, whatever came in
    assert len(answer.content) < 20_000  # nothing large is echoed back
    assert answer.headers["x-content-type-options"] == "nosniff"
    if hostile.status == 422 and hostile.path != GENERATE:
        assert all(isinstance(d["loc"], list) and d["loc"][0] == "body" for d in detail)


def test_an_integer_beyond_float_names_its_field(client: TestClient, diabetes_rows: list[dict[str, Any]]) -> None:
    record = {**diabetes_rows[0], "bmi": 10**400}
    answer = client.post(TABLE, json={"records": [record]})
    assert answer.status_code == 422
    [detail] = answer.json()["detail"]
    assert detail["loc"] == ["body", "records", 0, "bmi"] and "1.8e308" in detail["msg"]


def test_a_key_flood_is_reported_briefly(client: TestClient) -> None:
    detail = client.post(TABLE, content=KEY_FLOOD, headers=JSON).json()["detail"]
    unknown = [d for d in detail if "unknown column" in d["msg"]]
    assert 1 <= len(unknown) <= 5 and len(detail) <= 20


def test_docs_work_offline_and_pages_carry_security_headers(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert "https://" not in docs.text and "http://" not in docs.text
    policy = docs.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self' 'unsafe-inline'" in policy
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 100_000
    assert client.get("/docs/assets/../../etc/passwd").status_code == 404
    page = client.get("/")
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "content-security-policy" not in client.get("/healthz").headers  # JSON answers need none


# ----------------------------------------------------------------------------- property-based records
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.just(10**400),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=20), st.just("\ud800"), st.just("\udfff x"))
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.one_of(st.sampled_from(["age", "sex", "bmi", "bp", "s1", "x", "user", "item"]), st.text(max_size=10))
RECORDS = st.lists(st.one_of(st.dictionaries(KEYS, VALUES, max_size=6), VALUES), min_size=0, max_size=4)


def hostile_json(value: Any) -> bytes:
    """JSON text as a hostile client writes it: NaN and Infinity literals, lone surrogates escaped."""
    return json.dumps(value, allow_nan=True).encode()


@given(
    records=RECORDS,
    model=st.sampled_from(["digits", "diabetes", "films"]),
    k=st.one_of(st.none(), NUMBERS),
    large=st.booleans(),
)
@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_records_never_get_a_5xx(
    client: TestClient, records: list[Any], model: str, k: Any, large: bool
) -> None:
    body: dict[str, Any] = {"records": records}
    if k is not None:
        body["k"] = k
    # Trailing blanks past INLINE_VALIDATION_BYTES send the body through the step-by-step parser.
    text = hostile_json(body) + (b" " * (INLINE_VALIDATION_BYTES + 1) if large else b"")
    answer = client.post(f"/v1/models/{model}/predict", content=text, headers=JSON)
    assert answer.status_code in (200, 422), (body, answer.status_code, answer.text[:300])
    answer.json()


@given(
    prompt=st.one_of(st.text(max_size=30), st.just("\u0000\ud800")),
    temperature=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**30), 10**30)),
    top_p=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_generate_never_gets_a_5xx(client: TestClient, prompt: str, temperature: Any, top_p: Any) -> None:
    body = {"prompt": prompt, "temperature": temperature, "top_p": top_p, "max_new_tokens": 2}
    answer = client.post(GENERATE, content=hostile_json(body), headers=JSON)
    assert answer.status_code in (200, 422), (body, answer.status_code, answer.text[:300])
    answer.json()


# ----------------------------------------------------------------------------- live sockets
def raw_exchange(port: int, request: bytes, wait_s: float) -> bytes:
    """Send `request` as is (perhaps an unfinished body) and read the answer for up to `wait_s` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def test_slow_body_gets_408_and_the_key_is_checked_before_the_body(digits_run: Path, serve_live) -> None:
    services = load_services([f"digits={digits_run}"])
    app = create_app(services, ServeSettings(api_key="s3cret", body_timeout_s=0.5))
    with serve_live(app) as url:
        port = int(url.rsplit(":", 1)[1])
        head = "POST /v1/models/digits/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        started = time.monotonic()
        unauthenticated = raw_exchange(port, f"{head}Content-Length: 1000000\r\n\r\n".encode(), 3)
        assert unauthenticated.startswith(b"HTTP/1.1 401") and time.monotonic() - started < 2.5
        keyed = f"{head}Authorization: Bearer s3cret\r\nContent-Length: 1000\r\n\r\n".encode() + b'{"records"'
        started = time.monotonic()
        slow = raw_exchange(port, keyed, 5)
        assert slow.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in slow
        assert time.monotonic() - started < 4


def test_a_stream_waiting_for_a_decoding_row_gets_504(
    gpt_run: Path, serve_live, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelforge.text.generate as generate

    class StuckBatch(generate.DecodeBatch):  # the decoder Generator.decode_batch hands the server
        stuck = True

        def step(self) -> Any:
            if StuckBatch.stuck:  # the first decoding step hangs: the one row stays taken
                StuckBatch.stuck = False
                time.sleep(3)
            return super().step()

    monkeypatch.setattr(generate, "DecodeBatch", StuckBatch)
    app = create_app(load_services([f"bard={gpt_run}"]), ServeSettings(max_streams=1, timeout_s=1.0))

    async def scenario(url: str) -> tuple[int, httpx.Response, float]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            holder = asyncio.create_task(http.post(GENERATE, json={"prompt": "RO", "max_new_tokens": 50}))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            waiting = await http.post(GENERATE, json={"prompt": "RO", "max_new_tokens": 5, "stream": True})
            took = time.monotonic() - started
            return (await holder).status_code, waiting, took

    with serve_live(app) as url:
        _, waiting, took = asyncio.run(scenario(url))
    assert waiting.status_code == 504 and "no answer within 1 s" in waiting.json()["detail"]
    assert took < 2.5


# ----------------------------------------------------------------------------- the event loop stays free
def test_a_key_flood_does_not_block_healthz(cancer_run: Path) -> None:
    """A real server process on loopback: /healthz answers within 100 ms while the 3 MB key flood is checked."""
    command = [sys.executable, "-m", "modelforge", "serve", f"cancer={cancer_run}", "--port", "0", "--threads", "1"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        url = listening_url(process)
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(3):
                http.get("/healthz")  # warm the connection
            answers: list[httpx.Response] = []

            def send_flood() -> None:
                answers.append(
                    httpx.post(f"{url}/v1/models/cancer/predict", content=KEY_FLOOD, headers=JSON, timeout=60)
                )

            flood = threading.Thread(target=send_flood)
            waits = []
            flood.start()
            while flood.is_alive() or not waits:
                started = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                waits.append(time.perf_counter() - started)
                time.sleep(0.005)
            flood.join()
        assert answers[0].status_code == 422
        assert max(waits) < 0.1, f"/healthz waited {max(waits) * 1000:.0f} ms (of {len(waits)} polls)"
    finally:
        process.terminate()
        process.wait(timeout=30)


def listening_url(process: subprocess.Popen[str]) -> str:
    """The URL a `--port 0` server prints once it has picked its port, after it is ready."""
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("listening on "):
            url = line.split()[-1]
            break
    else:
        raise AssertionError(f"the server exited {process.wait()} without printing its port")
    threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe from filling up
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the server did not become ready")


def test_docs_render_in_a_browser_under_the_policy(digits_run: Path, serve_live) -> None:
    """Swagger UI from the local files draws the API in headless Chromium, with no CSP refusal."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    errors: list[str] = []
    outside: list[str] = []
    with serve_live(create_app(load_services([f"digits={digits_run}"]))) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page()
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            tab.on("request", lambda request: None if request.url.startswith(url) else outside.append(request.url))
            tab.goto(f"{url}/docs")
            tab.wait_for_selector(".opblock-summary-path", timeout=20_000)  # drawn from /openapi.json
            paths = tab.locator(".opblock-summary-path").all_inner_texts()
        finally:
            browser.close()
    assert any("/v1/models/{name}/predict" in path for path in paths), paths
    assert not errors and not outside, (errors, outside)
