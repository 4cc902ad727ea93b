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

Status codes: 401 wrong or missing API key (when one is set), 404 unknown model, 413 body too
large, 422 bad records (naming row and field), 429 queue full (with Retry-After), 504 timeout.
Bad input never gets a 500.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelforge.errors import ModelforgeError
from modelforge.serve.batcher import DynamicBatcher, QueueFullError, Served
from modelforge.serve.limits import (
    ASGIApp,
    BodyLimitMiddleware,
    Receive,
    Scope,
    Send,
    api_key_matches,
    replaying,
    send_json,
)
from modelforge.serve.metrics import ServerMetrics
from modelforge.serve.playground import PLAYGROUND_HTML
from modelforge.serve.records import RecordsError
from modelforge.serve.services import BatchedService, GenerateService, ImageService, Service
from modelforge.serve.streams import END, Stream, StreamScheduler, StreamStopped
from modelforge.text.generate import Sampling

MAX_RECORDS_PER_REQUEST = 10_000
MAX_PROMPT_CHARS = 20_000
MAX_IMAGES_PER_REQUEST = 256
DEFAULT_NEW_TOKENS = 100


@dataclass(frozen=True)
class ServeSettings:
    """Server limits and batching knobs (the `modelforge serve` options)."""

    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    inline_ms: float = 10.0  # see DynamicBatcher: a lone small request runs on the event loop's thread
    max_queue: int = 1024
    max_body_bytes: int = 8 * 1024 * 1024
    timeout_s: float = 30.0
    api_key: str | None = None
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


class ModelInfo(BaseModel):
    name: str
    task: str
    endpoint: str = Field(description="the route its runs answer on: predict, generate or images")
    features: list[Feature]
    classes: list[str]
    engine: str | None = Field(None, description="classification and regression runs: what runs the forward pass")


class ModelList(BaseModel):
    models: list[ModelInfo]


class Message(BaseModel):
    detail: str


class Health(BaseModel):
    status: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Message, "description": "the body is not valid JSON text"},
    404: {"model": Message, "description": "unknown model, or the model has no such endpoint"},
    413: {"model": Message, "description": "request body too large"},
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


# ----------------------------------------------------------------------------- middleware
_PREDICT_PATH = re.compile(r"^/v1/models/([^/]+)/predict$")


class ArrivalMiddleware:
    """Tell a model's batcher as soon as a predict request starts arriving, so it can wait for it."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PREDICT_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        batcher = self.state.batchers.get(match.group(1)) if match else None
        if batcher is None:
            await self.app(scope, receive, send)
            return
        arrival = Arrival(batcher)
        scope.setdefault("state", {})["arrival"] = arrival
        batcher.announce()
        try:
            await self.app(scope, receive, send)
        finally:
            arrival.done()


@dataclass
class Arrival:
    batcher: DynamicBatcher
    finished: bool = False

    def done(self) -> None:
        if not self.finished:
            self.finished = True
            self.batcher.withdraw()


@dataclass(frozen=True)
class RouteLabel:
    """What MetricsMiddleware reads from `scope["route"]` for requests answered before routing."""

    path: str


PREDICT_ROUTE = RouteLabel("/v1/models/{name}/predict")


class FastPredictMiddleware:
    """Answer well-formed predict requests without FastAPI's request machinery.

    Routing, dependency solving and the request/response objects cost ~0.5 ms a request, as much
    as a small model's forward pass. This path runs after the body limit and arrival middlewares
    and before FastAPI: a POST to a served model's /predict whose API key is right and whose body
    parses into `PredictRequest` and valid records is queued here, through the same
    `answer_records` as the route. Anything else is handed to the FastAPI route with its body
    replayed, so every error keeps the route's answer and shape.
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PREDICT_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        batcher = self.state.batchers.get(match.group(1)) if match and scope["method"] == "POST" else None
        if batcher is None or not self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        service = self.state.services[batcher.name]
        try:
            request = PredictRequest.model_validate_json(body)
            records = service.validate(request.records, request.k)  # type: ignore[union-attr]
        except (ValidationError, RecordsError):
            await self.app(scope, replaying(body, receive), send)
            return
        arrival = scope.get("state", {}).get("arrival")
        if arrival is not None:
            arrival.done()
        scope["route"] = PREDICT_ROUTE
        status, payload, headers = await answer_records(self.state, batcher, records)
        await send_json(send, status, payload, headers)

    def _authorized(self, scope: Scope) -> bool:
        api_key = self.state.settings.api_key
        if api_key is None:
            return True
        header = dict(scope.get("headers") or []).get(b"authorization")
        return api_key_matches(header.decode("latin-1") if header else None, api_key)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


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
    )
    app.state.serve = state
    guarded = [Depends(_api_key_guard(settings.api_key))] if settings.api_key else []
    _add_health_routes(app, state, guarded)
    _add_model_routes(app, state, guarded)
    app.add_middleware(FastPredictMiddleware, state=state)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ArrivalMiddleware, state=state)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


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
            return JSONResponse({"status": "not ready"}, status_code=503)
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
    async def predict(name: str, body: PredictRequest, request: Request) -> Response:
        service = state.service(name)
        arrival = getattr(request.state, "arrival", None)
        batcher = state.batchers.get(name)
        if not isinstance(service, BatchedService) or batcher is None:
            raise _wrong_endpoint(service)
        try:
            records = service.validate(body.records, body.k)
        except RecordsError as exc:
            return JSONResponse({"detail": [p.as_detail() for p in exc.problems]}, status_code=422)
        finally:
            if arrival is not None:
                arrival.done()
        status, payload, headers = await answer_records(state, batcher, records)
        return JSONResponse(payload, status, headers)

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
            return JSONResponse({"detail": [detail]}, status_code=422)
        if state.active_generations[name] >= settings.max_queue:
            return JSONResponse({"detail": f"model {name!r}: too many generations"}, 429, {"Retry-After": "1"})
        sampling = Sampling(body.max_new_tokens, body.temperature, body.top_k, body.top_p, body.seed)
        try:
            stream = state.schedulers[name].open(body.prompt, sampling)
        except (ModelforgeError, ValueError, KeyError) as exc:
            return _prompt_refused(exc)
        tokens = _TokenPump(state, name, stream)
        if body.stream:
            return StreamingResponse(tokens.events(), media_type="text/event-stream")
        try:
            text, count = await asyncio.wait_for(tokens.collect(), settings.timeout_s)
        except TimeoutError:
            return JSONResponse(no_answer(settings.timeout_s), status_code=504)
        except StreamStopped as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)
        except (ModelforgeError, ValueError, KeyError) as exc:
            return _prompt_refused(exc)
        return JSONResponse({"text": text, "new_tokens": count})

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
            return JSONResponse({"detail": [{"loc": ["body", "label"], "msg": why, "type": "value_error"}]}, 422)
        loop = asyncio.get_running_loop()
        pool = state.generation_pools[name]
        work = loop.run_in_executor(pool, service.sample, body.n, body.label, body.seed, body.temperature, body.grid)
        try:
            answer = await asyncio.wait_for(work, settings.timeout_s)
        except TimeoutError:
            return JSONResponse(no_answer(settings.timeout_s), status_code=504)
        return JSONResponse(answer)


def _wrong_endpoint(service: Service) -> HTTPException:
    from modelforge.tasks import TASKS

    endpoint = TASKS.get(service.task).endpoint
    return HTTPException(
        404, f"model {service.name!r} is a {service.task} model; use /v1/models/{service.name}/{endpoint}"
    )


class _TokenPump:
    """A generation stream's pieces as they arrive from the model's StreamScheduler."""

    def __init__(self, state: ServerState, name: str, stream: Stream) -> None:
        self.state, self.name, self.stream = state, name, stream

    async def tokens(self) -> AsyncIterator[str]:
        self.state.active_generations[self.name] += 1
        try:
            while True:
                item = await self.stream.pieces.get()
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

    async def events(self) -> AsyncIterator[str]:
        pieces: list[str] = []
        deadline = time.perf_counter() + self.state.settings.timeout_s
        try:
            async for token in self.tokens():
                pieces.append(token)
                yield f"data: {json.dumps({'token': token})}\n\n"
                if time.perf_counter() > deadline:
                    yield _sse("error", {"detail": f"stopped after {self.state.settings.timeout_s:g} s"})
                    return
        except (ModelforgeError, ValueError, KeyError) as exc:
            yield _sse("error", {"detail": _one_line(exc)})
            return
        yield _sse("done", {"text": "".join(pieces), "new_tokens": len(pieces)})


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _prompt_refused(exc: Exception) -> JSONResponse:
    """The 422 for a prompt the generator refused (too long, not encodable) or that failed midway."""
    detail = {"loc": ["body", "prompt"], "msg": _one_line(exc), "type": "value_error"}
    return JSONResponse({"detail": [detail]}, status_code=422)


def _one_line(exc: Exception) -> str:
    """The first line of a generator error, without the CLI's option prefix (`--prompt: `)."""
    return str(exc).splitlines()[0].removeprefix("--prompt: ")
