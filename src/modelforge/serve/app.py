"""The HTTP server: FastAPI routes over the loaded services, with batching, limits and metrics.

    GET  /                              playground page
    GET  /healthz, /readyz              alive; models loaded
    GET  /metrics                       Prometheus text format
    GET  /v1/models                     {"models": [{"name", "task", "features", "classes"}]}
    GET  /v1/models/{name}
    POST /v1/models/{name}/predict      {"records": [...]} → {"predictions": [...]}  (classification,
                                        regression, recommendation)
    POST /v1/models/{name}/generate     {"prompt": ..., "stream": true|false, sampling options}
    POST /v1/models/{name}/images       {"n": ..., "label": ..., "seed": ...} → PNG images (GAN / VAE runs)

Status codes: 400 a Host header the server does not answer to, 401 wrong or missing API key
(when one is set), 404 unknown model, 408 body too slow, 413 body too large, 415 a POST body that
is not application/json, 422 bad records (naming row and field), 429 queue full (with
Retry-After), 504 timeout. Bad input never gets a 500, and no request holds the event loop for
more than a few ms: a large predict body is parsed and checked on a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib.util
import json
import math
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelforge.errors import ModelforgeError
from modelforge.serve.batcher import DynamicBatcher, QueueFullError, Served
from modelforge.serve.limits import (
    ASGIApp,
    GuardSettings,
    JsonAnswer,
    Receive,
    RequestGuard,
    RouteLabel,
    Scope,
    Send,
    api_key_matches,
    read_body,
    send_json,
    validation_detail,
)
from modelforge.serve.metrics import ServerMetrics
from modelforge.serve.playground import PLAYGROUND_HTML
from modelforge.serve.records import BodyError, RecordsError, parse_body_in_steps
from modelforge.serve.services import BatchedService, GenerateService, ImageService, Service
from modelforge.serve.streams import END, Stream, StreamScheduler, StreamStopped
from modelforge.text.generate import Sampling

MAX_RECORDS_PER_REQUEST = 10_000
MAX_PROMPT_CHARS = 20_000
MAX_IMAGES_PER_REQUEST = 256
DEFAULT_NEW_TOKENS = 100
INLINE_VALIDATION_BYTES = 16 * 1024  # larger predict bodies are parsed and checked on a worker thread


@dataclass(frozen=True)
class ServeSettings:
    """Server limits and batching knobs (the `modelforge serve` options)."""

    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    inline_ms: float = 10.0  # see DynamicBatcher: a lone small request runs on the event loop's thread
    max_queue: int = 1024
    max_queue_rows: int = 16_384  # rows queued or in a forward pass per model (a larger lone request is admitted)
    max_body_bytes: int = 8 * 1024 * 1024
    body_timeout_s: float = 10.0
    timeout_s: float = 30.0
    api_key: str | None = None
    allowed_hosts: tuple[str, ...] | None = None  # Host names answered; None: any (run_server sets the bound host)
    max_new_tokens: int = 1024
    max_streams: int = 8  # GPT runs: generations decoded together (KV-cache rows); image runs: samplers at once

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------- schemas
class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # the types the schema states: no 0 for false
    records: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_RECORDS_PER_REQUEST,
        description="rows in the training columns' shape: {column: value}; images as nested lists of pixels; "
        "recommendation runs: {user} for top-K items, {user, item} for one pair's rating or score",
    )
    k: int | None = Field(None, ge=1, le=1000, description="recommendation runs: items per user (default: the run's k)")


class ClassPrediction(BaseModel):
    label: str | int | float | bool
    probabilities: dict[str, float]


class ValuePrediction(BaseModel):
    value: float


class ScoredItem(BaseModel):
    item: str
    score: float | None = Field(description="null for the popularity fallback")


class RankedItems(BaseModel):
    items: list[ScoredItem] = Field(description="best first; the user's training interactions left out")
    cold_start: bool = Field(description="unknown user: the most popular items instead")


class PairValue(BaseModel):
    value: float | None = Field(description="rating (explicit feedback) or score (implicit); null when unknown")
    cold_start: bool = Field(description="unknown user or item: the fallback value")


class PredictResponse(BaseModel):
    predictions: list[ClassPrediction | ValuePrediction | RankedItems | PairValue]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # the types the schema states: no 0 for false
    prompt: str = Field(max_length=MAX_PROMPT_CHARS, description="text to continue (empty: start from scratch)")
    max_new_tokens: int | None = Field(
        None, ge=1, le=100_000, description="default: 100, or the server's --max-new-tokens when lower"
    )
    temperature: float = Field(1.0, ge=0, le=100, allow_inf_nan=False, description="0 picks the likeliest token")
    top_k: int | None = Field(None, ge=1, le=1_000_000)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stream: bool = Field(False, description="send tokens as server-sent events as they are generated")


class GenerateResponse(BaseModel):
    text: str
    new_tokens: int


class ImagesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    n: int = Field(16, ge=1, le=MAX_IMAGES_PER_REQUEST, description="how many images")
    label: str | None = Field(None, description="the class to draw (conditional models); default: every class in turn")
    seed: int = Field(0, ge=0, le=2**63 - 1)
    temperature: float = Field(1.0, gt=0, le=10, allow_inf_nan=False, description="scale of the latent noise")
    grid: bool = Field(False, description="also return all images tiled into one PNG")


class GeneratedImage(BaseModel):
    label: str = Field(description="the class asked for ('' for unconditional models)")
    png: str = Field(description="base64-encoded PNG")


class ImagesResponse(BaseModel):
    images: list[GeneratedImage]
    grid: str | None = Field(None, description="base64-encoded PNG of the tiled images, when asked")


class Feature(BaseModel):
    name: str
    kind: str
    example: Any = Field(
        None, description="a typical value from the fitted preprocessing: the median, the most frequent category"
    )
    shape: list[int] | None = Field(None, description="image columns: channels, height and width the model reads")
    pixel_range: list[float] | None = Field(None, description="image columns: the lowest and highest training pixel")
    pixel_mean: float | None = Field(None, description="image columns: the training images' mean pixel")


class ModelInfo(BaseModel):
    name: str
    task: str
    endpoint: str = Field(description="the route its runs answer on: predict, generate or images")
    features: list[Feature]
    classes: list[str]
    engine: str | None = Field(
        None, description="classification, regression and language-modeling runs: what runs the forward pass"
    )


class ModelList(BaseModel):
    models: list[ModelInfo]


class Message(BaseModel):
    detail: str


class Health(BaseModel):
    status: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Message, "description": "a Host header the server does not answer to, or an unreadable body"},
    401: {"model": Message, "description": "missing or wrong API key (a server started with --api-key)"},
    404: {"model": Message, "description": "unknown model, or the model has no such endpoint"},
    408: {"model": Message, "description": "the body did not arrive within the server's --body-timeout"},
    413: {"model": Message, "description": "request body too large"},
    415: {"model": Message, "description": "the body is not sent as Content-Type: application/json"},
    429: {"model": Message, "description": "queue full; retry after the Retry-After header's seconds"},
    504: {"model": Message, "description": "the answer took longer than the request timeout"},
}


# ----------------------------------------------------------------------------- state
@dataclass
class ServerState:
    services: dict[str, Service]
    settings: ServeSettings
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    ready: bool = False
    batchers: dict[str, DynamicBatcher] = field(default_factory=dict)
    schedulers: dict[str, StreamScheduler] = field(default_factory=dict)  # GPT runs: streams decoded together
    generation_pools: dict[str, ThreadPoolExecutor] = field(default_factory=dict)  # image runs
    active_generations: dict[str, int] = field(default_factory=dict)
    validation_pool: ThreadPoolExecutor | None = None  # large predict bodies: parsed and checked off the loop

    def service(self, name: str) -> Service:
        service = self.services.get(name)
        if service is None:
            raise HTTPException(404, f"model {name!r} not found; serving: {', '.join(self.services) or 'none'}")
        return service


def _batch_observer(state: ServerState, name: str) -> Any:
    def observe(rows: int, queued: int) -> None:
        state.metrics.batch_size.observe(name, value=rows)
        state.metrics.queue_depth.set(name, value=queued)

    return observe


async def _start(state: ServerState) -> None:
    settings = state.settings
    for name, service in state.services.items():
        if isinstance(service, BatchedService):
            state.batchers[name] = DynamicBatcher(
                name,
                service.predict_batch,
                max_batch_size=settings.max_batch_size,
                max_wait_ms=settings.max_wait_ms,
                inline_ms=settings.inline_ms,
                max_queue=settings.max_queue,
                max_queue_rows=settings.max_queue_rows,
                max_retry_after_s=math.ceil(settings.timeout_s),
                on_batch=_batch_observer(state, name),
            )
            await state.batchers[name].start()
            state.metrics.queue_depth.set(name, value=0)
        elif isinstance(service, GenerateService):
            state.schedulers[name] = StreamScheduler(service.generator, settings.max_streams, name)
            state.schedulers[name].start()
            state.active_generations[name] = 0
        else:
            state.generation_pools[name] = ThreadPoolExecutor(settings.max_streams, thread_name_prefix=f"gen-{name}")
    state.validation_pool = ThreadPoolExecutor(2, thread_name_prefix="validate")
    # Everything loaded so far (torch, pandas, the models) lives as long as the server: moving it out
    # of the collector's reach keeps full collections, triggered by per-request garbage, cheap.
    gc.collect()
    gc.freeze()
    state.ready = True


async def _stop(state: ServerState) -> None:
    state.ready = False
    for batcher in state.batchers.values():
        await batcher.stop()
    for scheduler in state.schedulers.values():
        scheduler.stop()
    for pool in state.generation_pools.values():
        pool.shutdown(wait=True, cancel_futures=True)
    if state.validation_pool is not None:
        state.validation_pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- middleware
_PREDICT_PATH = re.compile(r"^/v1/models/([^/]+)/predict$")


PREDICT_ROUTE = RouteLabel("/v1/models/{name}/predict")


class FastPredictMiddleware:
    """Answer every predict request for a batched model without FastAPI's request machinery.

    Routing, dependency solving and the request/response objects cost ~0.5 ms a request, as much
    as a small model's forward pass. This path runs after `RequestGuard` (Host, API key,
    Content-Type and body size are checked, the body is read) and before FastAPI: a POST to a
    served model's /predict is parsed into `PredictRequest`, its records checked, and queued
    through the same `answer_records` as the route, or answered 422 in the route's shape. A body
    over `INLINE_VALIDATION_BYTES` is parsed and checked on a worker thread, so a large or hostile
    body holds the event loop for no longer than a small one. Anything else goes to FastAPI.

    The batcher is told a request is coming (`announce`) only once its body has arrived: a slow
    upload neither holds back other requests' batches nor keeps small ones off the inline path.
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PREDICT_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        batcher = self.state.batchers.get(match.group(1)) if match and scope["method"] == "POST" else None
        if batcher is None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, self.state.settings.max_body_bytes)  # RequestGuard has buffered it
        if body is None:
            return
        scope["route"] = PREDICT_ROUTE
        service = self.state.services[batcher.name]
        batcher.announce()
        try:
            if len(body) <= INLINE_VALIDATION_BYTES or self.state.validation_pool is None:
                checked = parse_records(service, body)
            else:
                loop = asyncio.get_running_loop()
                checked = await loop.run_in_executor(self.state.validation_pool, parse_records, service, body)
        finally:
            batcher.withdraw()
        if isinstance(checked, Problems):
            await send_json(send, 422, {"detail": checked.detail})
            return
        status, payload, headers = await answer_records(self.state, batcher, checked)
        await send_json(send, status, payload, headers)


def _checked_request(parsed: dict[str, Any]) -> PredictRequest:
    """`PredictRequest.model_validate(parsed)` without copying every record in one call.

    pydantic copies each record dict while it checks it: 50 ms holding the GIL for 10,000 rows.
    The records, plain dicts with string keys as JSON gives them, are checked here a row at a
    time; the rest of the body (a placeholder in place of the records) by pydantic. Anything
    wrong goes through pydantic itself, for its errors.
    """
    records = parsed.get("records")
    fine = isinstance(records, list) and 1 <= len(records) <= MAX_RECORDS_PER_REQUEST
    if not fine or not all(type(record) is dict for record in records):  # type: ignore[union-attr]
        return PredictRequest.model_validate(parsed)
    envelope = PredictRequest.model_validate({**parsed, "records": [{}]})
    return PredictRequest.model_construct(records=records, k=envelope.k)


@dataclass(frozen=True)
class Problems:
    """Why a predict body was refused, in FastAPI's 422 shape."""

    detail: list[dict[str, Any]]


def parse_records(service: Any, body: bytes) -> list[Any] | Problems:
    """A predict body's validated records, or the problems with it.

    A small body is parsed in one C call; a large one (on a worker thread) one value at a time,
    so that no single call holds the GIL, and with it the event loop, for long.
    """
    try:
        if len(body) <= INLINE_VALIDATION_BYTES:
            request = PredictRequest.model_validate_json(body)
        else:
            request = _checked_request(parse_body_in_steps(body, service.columns, MAX_RECORDS_PER_REQUEST))
        return service.validate(request.records, request.k)  # type: ignore[no-any-return]
    except BodyError as exc:
        return Problems([{"loc": ["body", exc.position], "msg": f"JSON decode error: {exc}", "type": "json_invalid"}])
    except ValidationError as exc:
        return Problems(validation_detail(exc.errors(include_url=False), ("body",)))
    except RecordsError as exc:
        return Problems([p.as_detail() for p in exc.problems])


def no_answer(timeout_s: float) -> dict[str, str]:
    """The 504 body of every endpoint."""
    return {"detail": f"no answer within {timeout_s:g} s"}


async def answer_records(state: ServerState, batcher: DynamicBatcher, records: list[Any]) -> tuple[int, Any, dict]:
    """Status, JSON body and headers for validated records: the answers, or 429, 504 or 422."""
    timeout_s = state.settings.timeout_s
    try:
        served = await batcher.submit(records, len(records), timeout_s)
    except QueueFullError as exc:
        return 429, {"detail": str(exc)}, {"Retry-After": str(exc.retry_after_s)}
    except TimeoutError:
        return 504, no_answer(timeout_s), {}
    except (ModelforgeError, ValueError) as exc:  # input the checks let through but the model refused
        detail = {"loc": ["body", "records"], "msg": str(exc).splitlines()[0], "type": "value_error"}
        return 422, {"detail": [detail]}, {}
    return 200, {"predictions": served.answer}, {"Server-Timing": server_timing(served)}


def server_timing(served: Served) -> str:
    """How long the request waited for its batch and how long that batch's pass took, in ms."""
    return f"queue;dur={served.queued_s * 1000:.3f}, model;dur={served.pass_s * 1000:.3f}"


class MetricsMiddleware:
    """Count requests by route and status, and time them."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.inc(label, str(status))
            self.metrics.latency.observe(label, value=time.perf_counter() - started)


# ----------------------------------------------------------------------------- app
def create_app(services: dict[str, Service], settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app serving `services` (see `load_services`)."""
    settings = settings or ServeSettings()
    state = ServerState(services, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await _start(state)
        try:
            yield
        finally:
            await _stop(state)

    app = FastAPI(
        title="modelforge serve",
        version="1",
        description="Predictions and generation from modelforge runs.",
        lifespan=lifespan,
        default_response_class=JsonAnswer,
        docs_url=None,  # served from the fastapi-offline package's files below, not a CDN
        redoc_url=None,
    )
    app.state.serve = state
    app.add_exception_handler(RequestValidationError, _invalid_request)
    guarded = [Depends(_api_key_guard(settings.api_key))] if settings.api_key else []
    _add_health_routes(app, state, guarded)
    _add_docs_routes(app)
    _add_model_routes(app, state, guarded)
    batched = [name for name, service in services.items() if isinstance(service, BatchedService)]
    guard = GuardSettings(
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        api_key=settings.api_key,
        allowed_hosts=None if settings.allowed_hosts is None else tuple(settings.allowed_hosts),
        large_body_paths=tuple(f"/v1/models/{name}/predict" for name in batched),
    )
    app.add_middleware(FastPredictMiddleware, state=state)
    app.add_middleware(RequestGuard, settings=guard)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


async def _invalid_request(_: Request, exc: Exception) -> Response:
    """FastAPI's 422 without the `input` it echoes: NaN, infinities or lone surrogates in it made a 500."""
    assert isinstance(exc, RequestValidationError)
    return JsonAnswer({"detail": validation_detail(exc.errors())}, status_code=422)


def _api_key_guard(api_key: str) -> Any:
    bearer = HTTPBearer(auto_error=False, description="the server's --api-key")

    async def require_api_key(request: Request, _: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not api_key_matches(request.headers.get("authorization"), api_key):
            raise HTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})

    return require_api_key


def _add_health_routes(app: FastAPI, state: ServerState, guarded: list[Any]) -> None:
    @app.get("/", include_in_schema=False)
    async def playground() -> HTMLResponse:
        return HTMLResponse(PLAYGROUND_HTML)

    @app.get("/healthz", response_model=Health, summary="The server is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Health,
        summary="Every model is loaded and its batcher running",
        responses={503: {"model": Health, "description": "starting or stopping"}},
    )
    async def readyz() -> Any:
        if not state.ready:
            return JsonAnswer({"status": "not ready"}, status_code=503)
        return {"status": "ready"}

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        dependencies=guarded,
        summary="Prometheus text format: requests by status, latency, batch sizes, queue depth",
    )
    async def metrics() -> PlainTextResponse:
        for name, batcher in state.batchers.items():
            state.metrics.queue_depth.set(name, value=batcher.queue_depth)
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}


def _add_docs_routes(app: FastAPI) -> None:
    """/docs: Swagger UI 5 (it reads OpenAPI 3.1) from the fastapi-offline package's files: no CDN, works offline."""

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        media_type = DOCS_ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"no docs asset {name!r}")
        return Response(swagger_asset(name), media_type=media_type, headers={"Cache-Control": "max-age=86400"})


@functools.cache
def swagger_asset(name: str) -> bytes:
    """One of Swagger UI's files, as fastapi-offline ships them (found without importing the package)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise HTTPException(404, "the API docs need fastapi-offline: pip install 'modelforge[serve]'")
    return (Path(spec.submodule_search_locations[0]) / "static" / name).read_bytes()


def _add_model_routes(app: FastAPI, state: ServerState, guarded: list[Any]) -> None:
    settings = state.settings

    @app.get(
        "/v1/models",
        response_model=ModelList,
        response_model_exclude_none=True,
        dependencies=guarded,
        summary="The served models",
    )
    async def list_models() -> dict[str, Any]:
        return {"models": [service.describe() for service in state.services.values()]}

    @app.get(
        "/v1/models/{name}",
        response_model=ModelInfo,
        response_model_exclude_none=True,
        responses={404: ERRORS[404]},
        dependencies=guarded,
    )
    async def model_info(name: str) -> dict[str, Any]:
        return state.service(name).describe()

    @app.post(
        "/v1/models/{name}/predict",
        response_model=PredictResponse,
        responses=ERRORS,
        dependencies=guarded,
        summary="Predictions for records, in request order (dynamically batched)",
    )
    async def predict(name: str, body: PredictRequest) -> Response:
        # FastPredictMiddleware answers every request for a served batched model; what reaches the
        # route is for an unknown model or one that does not predict.
        raise _wrong_endpoint(state.service(name))

    @app.post(
        "/v1/models/{name}/generate",
        response_model=GenerateResponse,
        responses={
            **ERRORS,
            503: {"model": Message, "description": "the server stopped before the generation ended"},
            200: {
                "description": 'the text; with stream=true, server-sent events: `data: {"token": ...}` per '
                "token, then `event: done` with the whole text",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
        },
        dependencies=guarded,
        summary="Generate text from a prompt (language-model runs)",
    )
    async def generate(name: str, body: GenerateRequest) -> Response:
        service = state.service(name)
        if not isinstance(service, GenerateService):
            raise _wrong_endpoint(service)
        if body.max_new_tokens is None:
            body.max_new_tokens = min(DEFAULT_NEW_TOKENS, settings.max_new_tokens)
        if body.max_new_tokens > settings.max_new_tokens:
            detail = {
                "loc": ["body", "max_new_tokens"],
                "msg": f"at most {settings.max_new_tokens} (the server's --max-new-tokens), got {body.max_new_tokens}",
                "type": "less_than_equal",
            }
            return JsonAnswer({"detail": [detail]}, status_code=422)
        if state.active_generations[name] >= settings.max_queue:
            return JsonAnswer({"detail": f"model {name!r}: too many generations"}, 429, {"Retry-After": "1"})
        sampling = Sampling(body.max_new_tokens, body.temperature, body.top_k, body.top_p, body.seed)
        try:
            stream = state.schedulers[name].open(body.prompt, sampling)
        except (ModelforgeError, ValueError, KeyError) as exc:
            return _prompt_refused(exc)
        tokens = _TokenPump(state, name, stream, time.perf_counter() + settings.timeout_s)
        try:
            if body.stream:
                # The first event is awaited here, so a stream that waits past the timeout for a free
                # decoding row gets the same 504 as a plain request instead of an open, silent stream.
                events = tokens.events()
                first = await anext(events)
                return StreamingResponse(_chained(first, events), media_type="text/event-stream")
            text, count = await tokens.collect()
        except TimeoutError:
            return JsonAnswer(no_answer(settings.timeout_s), status_code=504)
        except StreamStopped as exc:
            return JsonAnswer({"detail": str(exc)}, status_code=503)
        except (ModelforgeError, ValueError, KeyError) as exc:
            return _prompt_refused(exc)
        return JsonAnswer({"text": text, "new_tokens": count})

    @app.post(
        "/v1/models/{name}/images",
        response_model=ImagesResponse,
        responses=ERRORS,
        dependencies=guarded,
        summary="Sample images from a generation run (GAN or VAE) as base64 PNG",
    )
    async def images(name: str, body: ImagesRequest) -> Response:
        service = state.service(name)
        if not isinstance(service, ImageService):
            raise _wrong_endpoint(service)
        classes = service.run.classes
        if body.label is not None and body.label not in classes:
            why = f"not a class of {name} ({', '.join(classes)})" if classes else f"{name} is unconditional"
            return JsonAnswer({"detail": [{"loc": ["body", "label"], "msg": why, "type": "value_error"}]}, 422)
        loop = asyncio.get_running_loop()
        pool = state.generation_pools[name]
        work = loop.run_in_executor(pool, service.sample, body.n, body.label, body.seed, body.temperature, body.grid)
        try:
            answer = await asyncio.wait_for(work, settings.timeout_s)
        except TimeoutError:
            return JsonAnswer(no_answer(settings.timeout_s), status_code=504)
        return JsonAnswer(answer)


def _wrong_endpoint(service: Service) -> HTTPException:
    from modelforge.tasks import TASKS

    endpoint = TASKS.get(service.task).endpoint
    return HTTPException(
        404, f"model {service.name!r} is a {service.task} model; use /v1/models/{service.name}/{endpoint}"
    )


class _TokenPump:
    """A generation stream's pieces as they arrive from the model's StreamScheduler."""

    def __init__(self, state: ServerState, name: str, stream: Stream, deadline: float) -> None:
        self.state, self.name, self.stream, self.deadline = state, name, stream, deadline

    async def tokens(self) -> AsyncIterator[str]:
        """The pieces; TimeoutError when the next one has not come by the deadline (a row never freed included)."""
        self.state.active_generations[self.name] += 1
        try:
            while True:
                remaining = self.deadline - time.perf_counter()
                if remaining <= 0:
                    raise TimeoutError
                try:
                    item = self.stream.pieces.get_nowait()
                except asyncio.QueueEmpty:
                    item = await asyncio.wait_for(self.stream.pieces.get(), remaining)
                if item is END:
                    return
                if isinstance(item, Exception):
                    raise item
                self.state.metrics.generated_tokens.inc(self.name)
                yield str(item)
        finally:
            self.stream.cancelled = True  # finished, failed or abandoned by its client: free its row
            self.state.active_generations[self.name] -= 1

    async def collect(self) -> tuple[str, int]:
        pieces = [token async for token in self.tokens()]
        return "".join(pieces), len(pieces)

    async def events(self) -> AsyncGenerator[str, None]:
        """Server-sent events: one per token, then `done`; a failure before the first token is raised."""
        pieces: list[str] = []
        try:
            async for token in self.tokens():
                pieces.append(token)
                yield f"data: {json.dumps({'token': token})}\n\n"
        except TimeoutError:
            if not pieces:
                raise
            yield _sse("error", {"detail": f"stopped after {self.state.settings.timeout_s:g} s"})
            return
        except (ModelforgeError, ValueError, KeyError) as exc:
            if not pieces:
                raise
            yield _sse("error", {"detail": _one_line(exc)})
            return
        yield _sse("done", {"text": "".join(pieces), "new_tokens": len(pieces)})


async def _chained(first: str, rest: AsyncGenerator[str, None]) -> AsyncIterator[str]:
    try:
        yield first
        async for event in rest:
            yield event
    finally:
        await rest.aclose()  # a client that went away frees its decoding row now, not at garbage collection


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _prompt_refused(exc: Exception) -> JsonAnswer:
    """The 422 for a prompt the generator refused (too long, not encodable) or that failed midway."""
    detail = {"loc": ["body", "prompt"], "msg": _one_line(exc), "type": "value_error"}
    return JsonAnswer({"detail": [detail]}, status_code=422)


def _one_line(exc: Exception) -> str:
    """The first line of a generator error, without the CLI's option prefix (`--prompt: `)."""
    return str(exc).splitlines()[0].removeprefix("--prompt: ")
