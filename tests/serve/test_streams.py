"""The decoding thread of GPT runs: streams in, pieces out, errors and stopping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch

from modelforge.models.registry import build_model
from modelforge.serve.streams import END, Stream, StreamScheduler, StreamStopped
from modelforge.text.generate import GenerationError, Generator, Sampling
from modelforge.text.tokenizers import build_tokenizer


@pytest.fixture(scope="module")
def generator() -> Generator:
    tokenizer = build_tokenizer("char", 0).fit("abcdefgh ROME:")
    torch.manual_seed(0)
    options = {"layers": 2, "heads": 2, "width": 32, "context": 24}
    return Generator(build_model("gpt", None, tokenizer.vocab_size, options).eval(), tokenizer)


async def drain(stream: Stream) -> list[Any]:
    items = []
    while True:
        item = await asyncio.wait_for(stream.pieces.get(), 10)
        items.append(item)
        if item is END or isinstance(item, Exception):
            return items


def test_pieces_equal_the_generator_text_and_bad_prompts_fail_at_once(generator: Generator) -> None:
    scheduler = StreamScheduler(generator, slots=2)
    scheduler.start()

    async def go() -> list[list]:
        with pytest.raises(GenerationError, match="longer than the model's context"):
            scheduler.open("a" * 100, Sampling(5))
        streams = [scheduler.open("ROME", Sampling(30, 0.9, seed=seed)) for seed in range(3)]
        return await asyncio.gather(*(drain(s) for s in streams))

    try:
        results = asyncio.run(go())
    finally:
        scheduler.stop()
    for seed, items in enumerate(results):
        assert items[-1] is END
        assert "".join(items[:-1]) == generator.generate("ROME", 30, 0.9, None, None, seed)


def test_stopping_ends_open_and_waiting_streams_with_an_error(generator: Generator) -> None:
    scheduler = StreamScheduler(generator, slots=1)
    scheduler.start()

    async def go() -> tuple[list, list]:
        running = scheduler.open("ROME", Sampling(1_000_000))
        waiting = scheduler.open("ROME", Sampling(5))  # no free row while the first one runs
        first = await asyncio.wait_for(running.pieces.get(), 10)
        assert isinstance(first, str)
        await asyncio.get_running_loop().run_in_executor(None, scheduler.stop)
        return await drain(running), await drain(waiting)

    running, waiting = asyncio.run(go())
    assert isinstance(running[-1], StreamStopped) and isinstance(waiting[-1], StreamStopped)
    assert waiting == waiting[-1:]  # it never got a row
