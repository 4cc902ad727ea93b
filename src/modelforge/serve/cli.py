"""The `modelforge serve` verb. Only typer and the standard library are imported at module level."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

API_KEY_ENV = "MODELFORGE_API_KEY"


def serve(
    runs: Annotated[list[str], typer.Argument(help="run directories to serve, each RUN_DIR or NAME=RUN_DIR")],
    host: Annotated[str, typer.Option(help="interface to listen on (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port, 1-65535 (0: a free one, printed at start-up)")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar=API_KEY_ENV,
            help="require `Authorization: Bearer KEY` on /v1 and /metrics (visible in `ps`: prefer --api-key-file "
            "or the environment variable)",
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None, typer.Option(help="read the API key from this file (its first line)", show_default=False)
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            help="comma-separated Host names the server answers to, `*` for any (default: the --host address, "
            "and localhost names when it is loopback; any for 0.0.0.0)",
            show_default=False,
        ),
    ] = None,
    max_batch_size: Annotated[int, typer.Option(help="rows per forward pass at most")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="longest wait for a batch to fill")] = 5.0,
    inline_ms: Annotated[
        float, typer.Option(help="a lone request expected to take less runs on the event loop's thread (0: never)")
    ] = 10.0,
    max_queue: Annotated[int, typer.Option(help="queued requests per model before 429")] = 1024,
    max_queue_rows: Annotated[
        int, typer.Option(help="records queued or in a forward pass per model before 429 (a larger lone request runs)")
    ] = 16_384,
    max_body_bytes: Annotated[
        int, typer.Option(help="largest predict request body (413 above; other bodies: 256 KiB)")
    ] = 8 * 1024 * 1024,
    body_timeout: Annotated[float, typer.Option(help="seconds a request body may take to arrive (408 after)")] = 10.0,
    timeout: Annotated[float, typer.Option(help="seconds before a request is answered 504")] = 30.0,
    max_new_tokens: Annotated[int, typer.Option(help="largest max_new_tokens a generate request may ask")] = 1024,
    max_streams: Annotated[
        int, typer.Option(help="generations decoded together per GPT run (more wait for a free row)")
    ] = 8,
    workers: Annotated[int, typer.Option(help="server processes (each loads every model)")] = 1,
    engine: Annotated[
        str,
        typer.Option(
            help="torch (a frozen graph where the model allows one, checked against eager), eager (the module "
            "as trained), or onnx (needs `modelforge export RUN --format onnx`)"
        ),
    ] = "torch",
    threads: Annotated[int | None, typer.Option(help="CPU threads per forward pass (default: torch's)")] = None,
    access_log: Annotated[bool, typer.Option(help="log a line per request (off: /metrics counts them)")] = False,
) -> None:
    """Serve runs over HTTP: predictions with dynamic batching, generation, metrics, a playground at /."""
    from modelforge.errors import ModelforgeError

    problems = [
        f"--{name} must be >= {low}, got {value}"
        for name, value, low in (
            ("port", port, 0),
            ("max-queue-rows", max_queue_rows, 1),
            ("body-timeout", body_timeout, 0.001),
            ("max-batch-size", max_batch_size, 1),
            ("max-wait-ms", max_wait_ms, 0),
            ("inline-ms", inline_ms, 0),
            ("max-queue", max_queue, 1),
            ("max-body-bytes", max_body_bytes, 1),
            ("timeout", timeout, 0.001),
            ("max-new-tokens", max_new_tokens, 1),
            ("max-streams", max_streams, 1),
            ("workers", workers, 1),
            ("threads", threads or 1, 1),
        )
        if value < low
    ]
    if port > 65535:
        problems.append(f"--port must be <= 65535, got {port}")
    key = None
    try:
        key = resolve_api_key(api_key, api_key_file)
    except ModelforgeError as exc:
        problems.append(str(exc))
    hosts = None if allowed_hosts is None else tuple(h.strip() for h in allowed_hosts.split(",") if h.strip())
    if hosts == ():
        problems.append("--allowed-hosts is empty: give host names (comma-separated) or * for any")
    if problems:
        raise ModelforgeError("; ".join(problems))

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ModelforgeError("serve needs FastAPI and uvicorn: pip install 'modelforge[serve]'") from None
    from modelforge.serve.app import ServeSettings
    from modelforge.serve.server import ServerOptions, run_server

    settings = ServeSettings(
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        inline_ms=inline_ms,
        max_queue=max_queue,
        max_queue_rows=max_queue_rows,
        max_body_bytes=max_body_bytes,
        body_timeout_s=body_timeout,
        timeout_s=timeout,
        api_key=key,
        allowed_hosts=hosts,
        max_new_tokens=max_new_tokens,
        max_streams=max_streams,
    )
    options = ServerOptions(runs, host, port, workers, engine, threads, access_log=access_log)
    run_server(options, settings)


def resolve_api_key(api_key: str | None, api_key_file: Path | None) -> str | None:
    """The key from --api-key, --api-key-file or the environment; an empty one is refused, not taken as "no key"."""
    from modelforge.errors import ModelforgeError

    if api_key_file is not None and api_key is not None and api_key == os.environ.get(API_KEY_ENV):
        api_key = None  # typer filled it in from the environment: the file given on the command line wins
    if api_key is not None and api_key_file is not None:
        raise ModelforgeError("--api-key and --api-key-file: give one of them")
    if api_key_file is not None:
        try:
            lines = api_key_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ModelforgeError(f"--api-key-file {api_key_file}: cannot read it ({exc.strerror or exc})") from None
        api_key = lines[0] if lines else ""
        source = f"--api-key-file {api_key_file}"
    elif api_key is None and API_KEY_ENV in os.environ:
        api_key = os.environ[API_KEY_ENV]  # typer reads an empty variable as unset: that would turn auth off
        source = API_KEY_ENV
    else:
        source = "--api-key"
    if api_key is not None and not api_key.strip():
        raise ModelforgeError(
            f"{source}: the API key is empty; give a key, or leave the option out to serve without one"
        )
    return api_key.strip() if api_key is not None else None


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)
