"""Run the app under uvicorn, one process or several, and exit 0 after a graceful SIGTERM.

On SIGTERM (or Ctrl+C) uvicorn stops accepting connections, lets in-flight requests finish
(up to the request timeout plus a margin), then runs the app's shutdown, which answers what
is still queued. uvicorn re-raises the signal it caught once it is done; a no-op handler
installed first turns that into a normal return, so the process exits 0.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any

from modelforge.serve.app import ServeSettings, create_app
from modelforge.serve.limits import default_allowed_hosts, is_loopback
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
    """Load every model (errors surface before the port opens), then serve until SIGTERM.

    Without `settings.allowed_hosts` the server answers to the Host names of the address it is
    bound to (see `default_allowed_hosts`); port 0 picks a free port and prints it.
    """
    import uvicorn

    from modelforge.inference import set_cpu_threads
    from modelforge.serve.transport import CoalescingHttpProtocol

    if settings.allowed_hosts is None:
        settings = dataclasses.replace(settings, allowed_hosts=default_allowed_hosts(options.host))
    set_cpu_threads(options.threads)
    services = load_services(options.models, options.engine, options.threads)
    for name, service in services.items():
        engine = service.describe().get("engine")
        print(f"model {name}: {service.task} run {service.path}" + (f", {engine}" if engine else ""), file=sys.stderr)
    for warning in exposure_warnings(options.host, settings):
        print(f"WARNING: {warning}", file=sys.stderr)
    port = options.port or free_port(options.host)
    if not options.port:
        print(f"listening on {url(options.host, port)}", file=sys.stderr, flush=True)
    common: dict[str, Any] = {
        "host": options.host,
        "port": port,
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


def exposure_warnings(host: str, settings: ServeSettings) -> list[str]:
    """What makes this server reachable by more than its own machine's trusted users."""
    warnings = []
    if not is_loopback(host) and settings.api_key is None:
        warnings.append(
            f"serving on {host}, reachable from other machines, without an API key: anyone who can reach the "
            "port can run predictions; set --api-key-file (or MODELFORGE_API_KEY)"
        )
    if settings.api_key is None and (settings.allowed_hosts is None or "*" in settings.allowed_hosts):
        warnings.append("any Host header is answered; --allowed-hosts NAME,... keeps DNS-rebinding pages out")
    return warnings


def free_port(host: str) -> int:
    """A TCP port free on `host` now (the server binds it a moment later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _ignore_repeated_signal(signum: int, frame: Any) -> None:
    """uvicorn re-raises the SIGTERM it handled after shutting down; by then there is nothing to do."""
