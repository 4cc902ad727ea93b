"""A loopback HTTP mirror of a dataset folder: serves `/NAME/FILE`, honours Range requests unless told
not to, can corrupt what it serves or drop the connection halfway, and records each request's Range header."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
needs_shared = pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason=f"{SHARED_DATASETS} is not on this machine")


@dataclass
class Mirror:
    root: Path
    url: str = ""
    ranges: bool = True  # False: ignore Range and send the whole file, as many servers do
    corrupt: set[str] = field(default_factory=set)  # paths served with one byte changed
    truncate: set[str] = field(default_factory=set)  # paths whose download stops halfway (a dropped connection)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


def serve(mirror: Mirror) -> Iterator[Mirror]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            relative = self.path.lstrip("/")
            mirror.requests.append((relative, self.headers.get("Range")))
            path = mirror.root / relative
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            if relative in mirror.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            header = self.headers.get("Range")
            if header and mirror.ranges:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if relative in mirror.truncate:
                self.wfile.write(data[start : start + (len(data) - start) // 2])
                self.close_connection = True
                return
            self.wfile.write(data[start:])

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mirror.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
