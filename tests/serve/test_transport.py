"""The coalescing transport: a response head leaves with its body in one write, or alone at the step's end."""

from __future__ import annotations

import asyncio
from typing import Any

from modelforge.serve.transport import CoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return f"info:{name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_head_and_body_of_one_step_are_one_write_and_a_lone_head_goes_at_the_step_end() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes], RecordingTransport]:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        assert transport.get_extra_info("peername") == "info:peername"  # the rest is the socket's own
        transport.write(HEAD)
        transport.write(b"{}")
        together = list(raw.writes)
        raw.writes.clear()
        transport.write(HEAD)  # a stream: its first chunk comes in a later step
        before_step_end = list(raw.writes)
        await asyncio.sleep(0)
        transport.write(b"data: 1\n\n")
        after = list(raw.writes)
        raw.writes.clear()
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # interim answers are never held
        transport.write(HEAD)
        transport.close()  # closing sends what is held
        return together, before_step_end, after + raw.writes, raw

    together, before_step_end, later, raw = asyncio.run(scenario())
    assert together == [HEAD + b"{}"]
    assert before_step_end == []
    assert later[:2] == [HEAD, b"data: 1\n\n"]
    assert later[2:] == [b"HTTP/1.1 100 Continue\r\n\r\n", HEAD] and raw.closed
