"""Generation streams of one GPT run, decoded together on one thread (continuous batching).

Each generate request opens a stream: its prompt is checked on the event loop, then it waits
for a free row of the model's `DecodeBatch`. The decoding thread admits waiting streams
(one prompt pass each, which gives their first token at once), then advances every open
stream by one token in one batched forward pass, and so on. Text pieces reach each stream's
asyncio queue as they are decoded; a stream whose client went away is dropped at the next
step. One thread and one pass per token for all streams replaces a thread per stream, which
on a small machine spent its time fighting over the GIL and the cores.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from modelforge.errors import ModelforgeError
from modelforge.text.generate import Decoder, Decoding, Generator, PieceDecoder, Sampling, check_settings

END = object()  # put on a stream's queue after its last piece


class StreamStopped(ModelforgeError):
    """The server stopped (or its decoding thread failed) before the stream ended."""


@dataclass(eq=False)
class Stream:
    """One generation as the event loop sees it: pieces (then END, or an exception) arrive on `pieces`."""

    prompt_ids: list[int]
    sampling: Sampling
    loop: asyncio.AbstractEventLoop
    pieces: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    cancelled: bool = False

    def send(self, item: Any) -> None:
        """From the decoding thread: hand one piece (or END, or an error) to the event loop."""
        self.loop.call_soon_threadsafe(self.pieces.put_nowait, item)


class StreamScheduler:
    """Owns a GPT run's decoder (`Generator.decode_batch`) and the thread that runs it (see the module docstring)."""

    def __init__(self, generator: Generator, slots: int, name: str = "gpt") -> None:
        self.generator, self.slots, self.name = generator, slots, name
        self._inbox: queue.Queue[Stream | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"decode-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the steps in progress; open streams end with an error."""
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def open(self, prompt: str, sampling: Sampling) -> Stream:
        """A new stream; bad prompts or settings raise GenerationError here, before anything is queued."""
        check_settings(sampling.max_new_tokens, sampling.temperature, sampling.top_k, sampling.top_p)
        stream = Stream(self.generator.prompt_ids(prompt), sampling, asyncio.get_running_loop())
        self._inbox.put(stream)
        return stream

    # ------------------------------------------------------------------ the decoding thread
    def _run(self) -> None:
        batch = self.generator.decode_batch(self.slots)
        waiting: list[Stream] = []
        open_streams: dict[Decoding, tuple[Stream, PieceDecoder]] = {}
        try:
            while self._take_inbox(waiting, block=not batch.active and not waiting):
                while waiting and batch.has_room:
                    stream = waiting.pop(0)
                    if not stream.cancelled:
                        self._admit(batch, stream, open_streams)
                for decoding, (stream, _) in list(open_streams.items()):
                    if stream.cancelled:
                        batch.drop(decoding)
                        del open_streams[decoding]
                if batch.active:
                    self._step(batch, open_streams)
        finally:  # stopped, or this thread failed: nobody is left waiting for tokens that will not come
            ending = StreamStopped("the server stopped before this generation ended")
            for stream in [*(s for s, _ in open_streams.values()), *waiting, *self._drain_inbox()]:
                stream.send(ending)

    def _step(self, batch: Decoder, open_streams: dict) -> None:
        try:
            stepped = batch.step()
        except Exception as exc:  # the pass failed for everyone in it
            for decoding, (stream, _) in open_streams.items():
                batch.drop(decoding)
                stream.send(exc)
            open_streams.clear()
            return
        for decoding, token in stepped:
            self._deliver(decoding, token, open_streams)

    def _drain_inbox(self) -> list[Stream]:
        streams = []
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return streams
            if item is not None:
                streams.append(item)

    def _take_inbox(self, waiting: list[Stream], block: bool) -> bool:
        """Move new streams to `waiting` (waiting for one when idle); False once stop() was called."""
        try:
            item = self._inbox.get(block=block)
            while True:
                if item is None:
                    return False
                waiting.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return True

    def _admit(self, batch: Decoder, stream: Stream, open_streams: dict) -> None:
        try:
            decoding, token = batch.add(stream.prompt_ids, stream.sampling)
        except Exception as exc:
            stream.send(exc)
            return
        open_streams[decoding] = (stream, PieceDecoder(self.generator.tokenizer))
        self._deliver(decoding, token, open_streams)

    @staticmethod
    def _deliver(decoding: Decoding, token: int | Exception, open_streams: dict) -> None:
        stream, pieces = open_streams[decoding]
        if isinstance(token, Exception):
            stream.send(token)
            del open_streams[decoding]
            return
        piece = pieces.push(token)
        if piece is not None:
            stream.send(piece)
        if decoding.finished:
            rest = pieces.flush()
            if rest is not None:
                stream.send(rest)
            stream.send(END)
            del open_streams[decoding]
