"""Text generation from a GPT run: KV-cache decoding, temperature / top-k / top-p sampling.

    generator = load_generator("runs/shakespeare")
    for piece in generator.stream("ROMEO:", max_new_tokens=200, temperature=0.8, seed=0):
        print(piece, end="", flush=True)

Greedy when temperature is 0; the same seed gives the same text. The prompt is encoded,
run through the model once (filling the cache), then each new token costs one position's
work. When the cache is full (prompt + new tokens > the model's context) the window slides:
the last half-context of tokens is re-encoded and decoding goes on from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from modelforge.errors import ModelforgeError
from modelforge.models.gpt import GPT
from modelforge.text.tokenizers import Tokenizer

MAX_PENDING_TOKENS = 8  # byte-level tokens held back while they end inside a UTF-8 character


class GenerationError(ModelforgeError):
    """A generation request cannot be served as asked (prompt, sampling settings)."""


@dataclass
class Generator:
    model: GPT
    tokenizer: Tokenizer
    use_cache: bool = True

    @property
    def context(self) -> int:
        return self.model.config.context

    def stream(
        self,
        prompt: str,
        max_new_tokens: int = 100,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Decoded text pieces of the continuation of `prompt`, yielded as tokens come.

        Bad settings or prompts raise GenerationError here, before the first piece.
        """
        check_settings(max_new_tokens, temperature, top_k, top_p)
        prompt_ids = self.prompt_ids(prompt)
        return self._pieces(self.token_ids(prompt_ids, max_new_tokens, temperature, top_k, top_p, seed))

    def _pieces(self, tokens: Iterator[int]) -> Iterator[str]:
        pieces = PieceDecoder(self.tokenizer)
        for token in tokens:
            piece = pieces.push(token)
            if piece is not None:
                yield piece
        rest = pieces.flush()
        if rest is not None:
            yield rest

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = 100,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> str:
        """The whole continuation of `prompt` (without the prompt)."""
        return "".join(self.stream(prompt, max_new_tokens, temperature, top_k, top_p, seed))

    def decode_batch(self, slots: int) -> Decoder:
        """Up to `slots` generations decoded together (what `modelforge serve` streams from)."""
        return DecodeBatch(self, slots)

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of the prompt; an empty prompt starts from a newline (or token 0)."""
        if not prompt:
            try:
                return self.tokenizer.encode("\n")[-1:] or [0]
            except ModelforgeError:
                return [0]
        try:
            ids = self.tokenizer.encode(prompt)
        except ModelforgeError as exc:
            raise GenerationError(f"--prompt: {exc}") from None
        if len(ids) > self.context:
            raise GenerationError(
                f"--prompt: {len(ids)} tokens, longer than the model's context of {self.context}; shorten the prompt"
            )
        return ids

    @torch.no_grad()
    def token_ids(
        self,
        prompt_ids: list[int],
        max_new_tokens: int,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        seed: int | None,
    ) -> Iterator[int]:
        """New token ids, one at a time, with the KV cache (or full recompute when use_cache=False)."""
        was_training = self.model.training
        self.model.eval()
        device = self.model.token_embedding.weight.device
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        history = list(prompt_ids)
        cache = self.model.new_cache() if self.use_cache else None
        try:
            logits = self.model(torch.tensor([history], device=device), cache)[0, -1]
            for produced in range(max_new_tokens):
                token = pick_token(logits, temperature, top_k, top_p, generator)
                history.append(token)
                yield token
                if produced + 1 == max_new_tokens:
                    break
                if cache is None:
                    logits = self.model(torch.tensor([history[-self.context :]], device=device))[0, -1]
                elif cache.length == cache.capacity:  # full: slide to the last half-context
                    cache = self.model.new_cache()
                    window = history[-max(1, self.context // 2) :]
                    logits = self.model(torch.tensor([window], device=device), cache)[0, -1]
                else:
                    logits = self.model(torch.tensor([[token]], device=device), cache)[0, -1]
        finally:
            self.model.train(was_training)


@dataclass
class PieceDecoder:
    """Token ids in, text pieces out: a multi-byte character split across tokens waits for the rest."""

    tokenizer: Tokenizer
    pending: list[int] = field(default_factory=list)

    def push(self, token: int) -> str | None:
        self.pending.append(token)
        piece = self.tokenizer.decode(self.pending)
        if piece.endswith("\ufffd") and len(self.pending) < MAX_PENDING_TOKENS:
            return None
        self.pending.clear()
        return piece

    def flush(self) -> str | None:
        """What is still held back (an incomplete character), once the tokens end."""
        if not self.pending:
            return None
        piece = self.tokenizer.decode(self.pending)
        self.pending.clear()
        return piece


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 100
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None


class Decoder(Protocol):
    """Generations started with `add`, advanced a token each with `step` (see `DecodeBatch`)."""

    active: list[Decoding]

    @property
    def has_room(self) -> bool: ...

    def add(self, prompt_ids: list[int], sampling: Sampling) -> tuple[Decoding, int]: ...

    def step(self) -> list[tuple[Decoding, int | Exception]]: ...

    def drop(self, decoding: Decoding) -> None: ...


@dataclass(eq=False)
class Decoding:
    """One generation in a `DecodeBatch`: its cache row, tokens so far and what it still may produce."""

    sampling: Sampling
    slot: int
    history: list[int]
    position: int  # tokens in its cache row
    produced: int = 0
    random: torch.Generator | None = None

    @property
    def finished(self) -> bool:
        return self.produced >= self.sampling.max_new_tokens

    def take(self, logits: torch.Tensor) -> int:
        """Pick the next token from `logits` with this generation's sampling; it joins the history."""
        s = self.sampling
        token = pick_token(logits, s.temperature, s.top_k, s.top_p, self.random)
        self.history.append(token)
        self.produced += 1
        return token

    def advance(self, logits: torch.Tensor) -> int | Exception:
        """`take` for a decoder stepping many generations: the GenerationError that ends this one (it is
        then finished) is returned for its stream, not raised into the others'."""
        try:
            return self.take(logits)
        except GenerationError as exc:
            self.produced = self.sampling.max_new_tokens
            return exc


class DecodeBatch:
    """Generations advanced together, one batched forward pass per token (continuous batching).

    Each generation owns a row of one shared KV cache. `add` runs a prompt into a free row and
    picks its first token; `step` feeds every unfinished generation's last token in one pass,
    each at its own position, and picks the next ones. The tokens equal what `Generator.stream`
    gives each generation alone (same sampling, same seed), window slides included.
    """

    def __init__(self, generator: Generator, slots: int) -> None:
        self.generator, self.model = generator, generator.model
        self.model.eval()
        self.device = self.model.token_embedding.weight.device
        self.cache = self.model.new_cache(slots)
        self.free = list(range(slots))[::-1]
        self.active: list[Decoding] = []

    @property
    def has_room(self) -> bool:
        return bool(self.free)

    @torch.no_grad()
    def add(self, prompt_ids: list[int], sampling: Sampling) -> tuple[Decoding, int]:
        """Start a generation in a free row (see `has_room`): the decoding and its first token."""
        if sampling.max_new_tokens < 1:
            raise GenerationError(f"max_new_tokens: must be >= 1 to start a generation, got {sampling.max_new_tokens}")
        random = torch.Generator().manual_seed(sampling.seed) if sampling.seed is not None else None
        decoding = Decoding(sampling, self.free.pop(), list(prompt_ids), 0, random=random)
        try:
            token = decoding.take(self._prompt_pass(decoding, decoding.history))
        except Exception:
            self.free.append(decoding.slot)
            raise
        if not decoding.finished:
            self.active.append(decoding)
        else:
            self.free.append(decoding.slot)
        return decoding, token

    @torch.no_grad()
    def step(self) -> list[tuple[Decoding, int | Exception]]:
        """The next token of every active generation (or the error that ended it); finished ones leave."""
        window = max(1, self.generator.context // 2)
        sliding = [d for d in self.active if d.position == self.cache.capacity]
        batched = [d for d in self.active if d.position < self.cache.capacity]
        logits: dict[int, torch.Tensor] = {}
        if len(batched) == 1:  # alone: the plain cached forward on its row, cheaper than gathering rows
            [decoding] = batched
            row = self.cache.row(decoding.slot)
            row.length = decoding.position
            logits[id(decoding)] = self.model(torch.tensor([[decoding.history[-1]]], device=self.device), row)[0, -1]
            decoding.position += 1
        elif batched:
            tokens = torch.tensor([d.history[-1] for d in batched], device=self.device)
            rows = torch.tensor([d.slot for d in batched], device=self.device)
            positions = torch.tensor([d.position for d in batched], device=self.device)
            for decoding, row in zip(batched, self.model.decode(tokens, self.cache, rows, positions), strict=True):
                decoding.position += 1
                logits[id(decoding)] = row
        for decoding in sliding:  # full row: re-encode the last half-context, as Generator.token_ids does
            logits[id(decoding)] = self._prompt_pass(decoding, decoding.history[-window:])
        out: list[tuple[Decoding, int | Exception]] = []
        for decoding in list(self.active):
            out.append((decoding, decoding.advance(logits[id(decoding)])))
            if decoding.finished:
                self.drop(decoding)
        return out

    def drop(self, decoding: Decoding) -> None:
        """Stop a generation (finished, or its client went away) and free its row."""
        if decoding in self.active:
            self.active.remove(decoding)
            self.free.append(decoding.slot)

    def _prompt_pass(self, decoding: Decoding, ids: list[int]) -> torch.Tensor:
        row = self.cache.row(decoding.slot)
        logits = self.model(torch.tensor([ids], device=self.device), row)[0, -1]
        decoding.position = row.length
        return logits


def check_settings(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    problems = []
    if max_new_tokens < 0:
        problems.append(f"max_new_tokens: must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        problems.append(f"temperature: must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        problems.append(f"top_k: must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        problems.append(f"top_p: must be in (0, 1], got {top_p}")
    if problems:
        raise GenerationError("; ".join(problems))


def pick_token(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> int:
    """Argmax when temperature is 0; else a sample from the tempered, top-k / top-p filtered softmax."""
    logits = logits.float().cpu()
    if not bool(torch.isfinite(logits).all()):
        raise GenerationError("the model's outputs are not finite (nan/inf): its weights diverged in training")
    if temperature == 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k is not None and top_k < logits.numel():
        threshold = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = sorted_probs.cumsum(0) - sorted_probs > top_p  # keeps the token that crosses top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def load_generator(run_dir: str | Path) -> Generator:
    """A Generator for a finished language-modeling run directory."""
    from modelforge.text.run import load_language_model_run

    run = load_language_model_run(run_dir)
    return Generator(run.model, run.tokenizer)
