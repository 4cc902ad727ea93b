"""Dynamic batching: requests for one model are queued and answered by one forward pass.

A batch runs when `max_batch_size` rows are waiting, when `max_wait_ms` has passed since its
first request was queued, or as soon as no other request for the model is on its way (every
request the server has started to read is already queued). The last rule keeps a lone
request from waiting for company that cannot come: at concurrency 1 a request runs at once,
while under load the batch fills from the requests that queued during the previous pass.

Forward passes run on one thread per model (`run_batch` must be thread-safe only with
itself not running concurrently), so the event loop keeps reading requests meanwhile. The
exception is a lone request that nothing else waits behind and whose pass is expected to take
under `inline_ms` (from the measured time per row): it runs on the event loop's own thread,
since handing it to the model thread and back costs two thread wake-ups — on a busy small
machine often more than the forward pass of a small model — and there is nothing to read
meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from modelforge.errors import ModelforgeError


class QueueFullError(ModelforgeError):
    """The model's queue holds `max_queue` requests or `max_queue_rows` rows; the client should retry later."""

    def __init__(self, model: str, retry_after_s: int) -> None:
        super().__init__(f"model {model!r}: queue is full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class _Pending:
    item: Any
    rows: int
    future: asyncio.Future[Any]
    queued_at: float


@dataclass(frozen=True)
class Served:
    """A request's answer and where its time in the batcher went (for the Server-Timing header)."""

    answer: Any
    queued_s: float  # from submit to the start of the pass that answered it
    pass_s: float  # that pass: the whole batch's `run_batch`


@dataclass
class BatchStats:
    """What the batcher has done so far (for metrics and tests)."""

    batches: int = 0
    rows: int = 0
    requests: int = 0
    seconds_per_row: float = 0.0  # moving average of forward time per row, for the inline decision
    # (rows, seconds from taking the batch to answering it) of the last batches: the drain rate for
    # Retry-After. A ratio of sums, so big batches (the ones a full queue runs) weigh by their rows.
    recent: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=32))

    def drain_seconds(self, rows: int) -> float:
        """Seconds the recent batches would have taken to answer `rows` rows."""
        done_rows = sum(r for r, _ in self.recent)
        return rows * sum(s for _, s in self.recent) / done_rows if done_rows else 0.0


@dataclass
class DynamicBatcher:
    """Queue requests of one model and run them in batches on a dedicated thread.

    `run_batch(items)` gets the items of the queued requests, in arrival order, and must
    return one answer per item in the same order.
    """

    name: str
    run_batch: Callable[[list[Any]], list[Any]]
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    max_queue_rows: int = 16_384  # rows queued or in the running pass; a larger request is admitted alone
    max_retry_after_s: int = 30  # a queue slower to drain than this times its requests out anyway
    inline_ms: float = 10.0
    on_batch: Callable[[int, int], None] | None = None  # (rows, queued requests left)
    stats: BatchStats = field(default_factory=BatchStats)
    _queue: deque[_Pending] = field(default_factory=deque)
    _arriving: int = 0
    _rows_in_flight: int = 0  # queued or in the running pass
    _changed: asyncio.Event | None = None
    _worker: asyncio.Task[None] | None = None
    _executor: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._changed = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{self.name}")
        self._worker = asyncio.create_task(self._work(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Answer what is queued, then stop the worker and its thread."""
        while self._queue:
            await asyncio.sleep(0.001)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ requests
    def announce(self) -> None:
        """A request for this model has started to arrive; the batcher may wait for it."""
        self._arriving += 1

    def withdraw(self) -> None:
        """An announced request will not be submitted (bad input) or has been submitted."""
        self._arriving = max(0, self._arriving - 1)
        self._notify()

    async def submit(self, item: Any, rows: int, timeout_s: float | None = None) -> Served:
        """Queue one request and wait for its answer; raises QueueFullError or TimeoutError."""
        too_many_rows = self._rows_in_flight and self._rows_in_flight + rows > self.max_queue_rows
        if len(self._queue) >= self.max_queue or too_many_rows:
            raise QueueFullError(self.name, self._retry_after_s())
        loop = asyncio.get_running_loop()
        pending = _Pending(item, rows, loop.create_future(), time.perf_counter())
        self._queue.append(pending)
        self._rows_in_flight += rows
        self._notify()
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout_s)
        except TimeoutError:
            pending.future.cancel()  # the worker drops it if it has not started yet
            raise

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _retry_after_s(self) -> int:
        """When the rows in flight will have drained at the measured rate (1 s at least)."""
        seconds = self.stats.drain_seconds(self._rows_in_flight)
        return min(self.max_retry_after_s, max(1, math.ceil(seconds)))

    # ------------------------------------------------------------------ worker
    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            if not batch:
                continue
            rows = sum(p.rows for p in batch)
            try:
                await self._answer(batch, rows)
            finally:
                self._rows_in_flight -= rows

    async def _answer(self, batch: list[_Pending], rows: int) -> None:
        """Run one batch and settle its requests' futures."""
        taken = time.perf_counter()
        if self.on_batch is not None:
            self.on_batch(rows, len(self._queue))
        items = [p.item for p in batch]
        if self._runs_inline(batch, rows):
            try:
                answers, started, seconds = self._timed_run(items)
            except Exception as exc:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
        else:
            loop = asyncio.get_running_loop()
            try:
                answers, started, seconds = await loop.run_in_executor(self._executor, self._timed_run, items)
            except Exception:
                await self._run_one_by_one(batch)  # so one bad request fails alone, not its whole batch
                return
        self._record(rows, len(batch), seconds)
        for pending, answer in zip(batch, answers, strict=True):
            if not pending.future.done():
                pending.future.set_result(Served(answer, started - pending.queued_at, seconds))
        self.stats.recent.append((rows, time.perf_counter() - taken))

    def _timed_run(self, items: list[Any]) -> tuple[list[Any], float, float]:
        """The answers, when the pass started and the seconds it took (without the thread hand-over)."""
        started = time.perf_counter()
        answers = self.run_batch(items)
        return answers, started, time.perf_counter() - started

    def _runs_inline(self, batch: list[_Pending], rows: int) -> bool:
        """A lone, small request with nobody queued or arriving behind it (see the module docstring)."""
        if len(batch) != 1 or self._queue or self._arriving or not self.stats.batches:
            return False
        return rows * self.stats.seconds_per_row * 1000.0 < self.inline_ms

    async def _run_one_by_one(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        for pending in batch:
            try:
                answers, started, seconds = await loop.run_in_executor(self._executor, self._timed_run, [pending.item])
            except Exception as exc:
                if not pending.future.done():
                    pending.future.set_exception(exc)
                continue
            if not pending.future.done():
                pending.future.set_result(Served(answers[0], started - pending.queued_at, seconds))

    async def _collect(self) -> list[_Pending]:
        """Wait for a first request, then gather more until full, timed out, or none is coming."""
        assert self._changed is not None
        while not self._queue:
            self._changed.clear()
            await self._changed.wait()
        first = self._queue[0]
        deadline = first.queued_at + self.max_wait_ms / 1000.0
        while True:
            self._changed.clear()
            queued_rows = sum(p.rows for p in self._queue)
            if queued_rows >= self.max_batch_size or self._arriving == 0:
                break
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                break
        return self._take()

    def _take(self) -> list[_Pending]:
        """Pop queued requests in order up to max_batch_size rows (a bigger one runs alone)."""
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            pending = self._queue[0]
            if batch and rows + pending.rows > self.max_batch_size:
                break
            self._queue.popleft()
            if pending.future.done():  # timed out while queued
                self._rows_in_flight -= pending.rows
                continue
            batch.append(pending)
            rows += pending.rows
        return batch

    def _record(self, rows: int, requests: int, seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.rows += rows
        stats.requests += requests
        per_row = seconds / max(rows, 1)
        stats.seconds_per_row = per_row if stats.batches == 1 else 0.9 * stats.seconds_per_row + 0.1 * per_row
