"""The dynamic batcher on its own: batch formation, the lone-request shortcut, queue limit, timeouts."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from modelforge.serve.batcher import DynamicBatcher, QueueFullError


def doubling_batches(log: list[list[int]], gate: threading.Event | None = None):
    def run_batch(items: list[list[int]]) -> list[list[int]]:
        if gate is not None:
            gate.wait(5)
        log.append([len(item) for item in items])
        for item in items:
            if -1 in item:
                raise ValueError("bad value -1")
        return [[2 * v for v in item] for item in items]

    return run_batch


def test_queued_requests_share_one_forward_pass_and_keep_their_order() -> None:
    async def scenario() -> tuple[list[list[int]], list[list[int]]]:
        log: list[list[int]] = []
        gate = threading.Event()
        batcher = DynamicBatcher("m", doubling_batches(log, gate), max_batch_size=6, max_wait_ms=50)
        await batcher.start()
        first = asyncio.create_task(batcher.submit([0], 1))
        await asyncio.sleep(0.05)  # the first request is now running (held by the gate)
        rest = [asyncio.create_task(batcher.submit([i, i], 2)) for i in range(1, 5)]
        await asyncio.sleep(0.01)
        gate.set()
        served = await asyncio.gather(first, *rest)
        await batcher.stop()
        assert served[0].pass_s >= 0.05  # the pass the gate held
        assert all(s.queued_s >= 0.005 for s in served[1:])  # queued behind it
        return log, [s.answer for s in served]

    log, answers = asyncio.run(scenario())
    assert answers == [[0], [2, 2], [4, 4], [6, 6], [8, 8]]
    assert log == [[1], [2, 2, 2], [2]]  # at most 6 rows per pass, in arrival order


def test_a_lone_request_does_not_wait_for_company() -> None:
    async def scenario() -> float:
        batcher = DynamicBatcher("m", doubling_batches([]), max_batch_size=64, max_wait_ms=1000)
        await batcher.start()
        started = time.perf_counter()
        assert (await batcher.submit([3], 1)).answer == [6]
        elapsed = time.perf_counter() - started
        await batcher.stop()
        return elapsed

    assert asyncio.run(scenario()) < 0.5  # far below max_wait_ms: nothing else was arriving


def test_an_announced_request_is_waited_for() -> None:
    async def scenario() -> list[list[int]]:
        log: list[list[int]] = []
        batcher = DynamicBatcher("m", doubling_batches(log), max_batch_size=64, max_wait_ms=2000)
        await batcher.start()
        batcher.announce()  # a second request is being read
        first = asyncio.create_task(batcher.submit([1], 1))
        await asyncio.sleep(0.05)
        batcher.withdraw()
        second = asyncio.create_task(batcher.submit([2], 1))
        await asyncio.gather(first, second)
        await batcher.stop()
        return log

    assert asyncio.run(scenario()) == [[1, 1]]


def test_full_queue_and_timeout_and_a_bad_request_failing_alone() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        batcher = DynamicBatcher("m", doubling_batches([], gate), max_batch_size=1, max_queue=2)
        await batcher.start()
        running = asyncio.create_task(batcher.submit([1], 1))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(batcher.submit([v], 1, timeout_s=0.1)) for v in (2, 3)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError) as info:
            await batcher.submit([4], 1)
        assert info.value.retry_after_s >= 1
        for task in queued:
            with pytest.raises(TimeoutError):
                await task
        gate.set()
        assert (await running).answer == [2]
        batcher.max_batch_size = 8
        good, bad = batcher.submit([5], 1), batcher.submit([-1], 1)
        results = await asyncio.gather(good, bad, return_exceptions=True)
        assert results[0].answer == [10] and isinstance(results[1], ValueError)  # type: ignore[union-attr]
        await batcher.stop()

    asyncio.run(scenario())


def test_a_lone_small_request_runs_on_the_loop_thread_once_its_cost_is_known() -> None:
    async def scenario(inline_ms: float) -> tuple[list[str], list[int]]:
        threads: list[str] = []

        def run_batch(items: list[list[int]]) -> list[list[int]]:
            threads.append(threading.current_thread().name)
            if -1 in items[0]:
                raise ValueError("bad value -1")
            return [[2 * v for v in item] for item in items]

        batcher = DynamicBatcher("m", run_batch, inline_ms=inline_ms)
        await batcher.start()
        answers = [(await batcher.submit([i], 1)).answer for i in range(3)]
        with pytest.raises(ValueError, match="bad value"):
            await batcher.submit([-1], 1)  # an error on the loop thread reaches its request alone
        answers.append((await batcher.submit([5], 1)).answer)
        await batcher.stop()
        return threads, [a[0] for a in answers]

    loop_thread = threading.current_thread().name
    threads, answers = asyncio.run(scenario(inline_ms=2.0))
    assert answers == [0, 2, 4, 10]
    assert threads[0].startswith("model-m") and threads[1:] == [loop_thread] * 4  # the first pass measures the cost
    threads, _ = asyncio.run(scenario(inline_ms=0.0))
    assert all(t.startswith("model-m") for t in threads)


def test_rows_in_flight_are_bounded_but_a_large_lone_request_runs() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        batcher = DynamicBatcher("m", doubling_batches([], gate), max_queue_rows=100, inline_ms=0)
        await batcher.start()
        alone = asyncio.create_task(batcher.submit(list(range(500)), 500))  # more than the bound, nothing else
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError):  # 500 rows running: one more row is over the bound
            await batcher.submit([1], 1)
        gate.set()
        assert len((await alone).answer) == 500
        gate.clear()
        running = asyncio.create_task(batcher.submit([0] * 60, 60))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(batcher.submit([0] * 30, 30))
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError):  # 60 running + 30 queued + 20 > 100
            await batcher.submit([0] * 20, 20)
        gate.set()
        await asyncio.gather(running, queued)
        assert batcher._rows_in_flight == 0
        await batcher.stop()

    asyncio.run(scenario())


def test_retry_after_follows_the_measured_drain_rate() -> None:
    batcher = DynamicBatcher("m", doubling_batches([]), max_retry_after_s=30)
    # Big batches drain 64 rows in 10 ms; a slow one-row warm-up pass does not make that look slow.
    batcher.stats.recent.extend([(1, 0.5), *[(64, 0.01)] * 40])  # the last 32 batches count
    batcher._rows_in_flight = 4096
    assert batcher._retry_after_s() == 1  # 4096 rows at ~6,000 rows/s: under a second
    batcher._rows_in_flight = 10**6
    assert batcher._retry_after_s() == 30  # capped: longer waits time out anyway
