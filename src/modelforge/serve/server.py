"""Run the app under uvicorn, one process or several, and exit 0 after a graceful SIGTERM.

On SIGTERM (or Ctrl+C) uvicorn stops accepting connections, lets in-flight requests finish
(up to the request timeout plus a margin), then runs the app's shutdown, which answers what
is still queued. uvicorn re-raises the signal it caught once it is done; a no-op handler
installed first turns that into a normal return, so the process exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from modelforge.serve.app import ServeSettings, create_app
from modelforge.serve.services import load_services

SETTINGS_ENV = "MODELFORGE_SERVE_CONFIG"
SHUTDOWN_MARGIN_S = 5.0


@dataclass(frozen=True)
class ServerOptions:
    models: list[str]
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    engine: str = "torch"
    threads: int | None = None
    log_level: str = "info"
    access_log: bool = False  # a log line per request costs ~10 % of the event loop's time under load


def app_from_environment() -> Any:
    """The app factory each uvicorn worker process calls (`--workers` > 1)."""
    from modelforge.inference import set_cpu_threads

    config = json.loads(os.environ[SETTINGS_ENV])
    set_cpu_threads(config["threads"])
    services = load_services(config["models"], config["engine"], config["threads"])
    return create_app(services, ServeSettings(**config["settings"]))


def run_server(options: ServerOptions, settings: ServeSettings) -> None:
    """Load every model (errors surface before the port opens), then serve until SIGTERM."""
    import uvicorn

    from modelforge.inference import set_cpu_threads
    from modelforge.serve.transport import CoalescingHttpProtocol

    set_cpu_threads(options.threads)
    services = load_services(options.models, options.engine, options.threads)
    for name, service in services.items():
        engine = service.describe().get("engine")
        print(f"model {name}: {service.task} run {service.path}" + (f", {engine}" if engine else ""), file=sys.stderr)
    common: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "log_level": options.log_level,
        "access_log": options.access_log,
        "timeout_graceful_shutdown": settings.timeout_s + SHUTDOWN_MARGIN_S,
        "server_header": False,
        "http": CoalescingHttpProtocol,
    }
    previous = signal.signal(signal.SIGTERM, _ignore_repeated_signal)
    try:
        if options.workers > 1:
            os.environ[SETTINGS_ENV] = json.dumps(
                {
                    "models": options.models,
                    "engine": options.engine,
                    "threads": options.threads,
                    "settings": settings.to_json(),
                }
            )
            del services  # each worker loads its own copy
            uvicorn.run("modelforge.serve.server:app_from_environment", factory=True, workers=options.workers, **common)
        else:
            uvicorn.Server(uvicorn.Config(create_app(services, settings), **common)).run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _ignore_repeated_signal(signum: int, frame: Any) -> None:
    """uvicorn re-raises the SIGTERM it handled after shutting down; by then there is nothing to do."""
