"""The `modelforge serve` verb. Only typer and the standard library are imported at module level."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    runs: Annotated[list[str], typer.Argument(help="run directories to serve, each RUN_DIR or NAME=RUN_DIR")],
    host: Annotated[str, typer.Option(help="interface to listen on (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="MODELFORGE_API_KEY", help="require `Authorization: Bearer KEY` on /v1 and /metrics"),
    ] = None,
    max_batch_size: Annotated[int, typer.Option(help="rows per forward pass at most")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="longest wait for a batch to fill")] = 5.0,
    inline_ms: Annotated[
        float, typer.Option(help="a lone request expected to take less runs on the event loop's thread (0: never)")
    ] = 10.0,
    max_queue: Annotated[int, typer.Option(help="queued requests per model before 429")] = 1024,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body (413 above)")] = 8 * 1024 * 1024,
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
        max_body_bytes=max_body_bytes,
        timeout_s=timeout,
        api_key=api_key or None,
        max_new_tokens=max_new_tokens,
        max_streams=max_streams,
    )
    options = ServerOptions(runs, host, port, workers, engine, threads, access_log=access_log)
    run_server(options, settings)


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)
