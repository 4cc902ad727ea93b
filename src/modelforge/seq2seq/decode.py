"""Decoding a seq2seq model: greedy and batched beam search, with the decoder's KV cache or without.

Both work on a batch of encoded sources (B × S, padded with 0) and return token ids without <s>/</s>.
`cache=False` recomputes the decoder over the whole prefix at every step (the baseline the cache is
measured against, bench/seq2seq.py); the two give the same tokens.

Beam search keeps `beam` hypotheses per source in one (B·beam)-row batch; a finished hypothesis
stays in its slot and only extends with padding at no cost; the best is chosen by
log-probability / ((5 + length) / 6) ** length_penalty (GNMT).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from modelforge.models.seq2seq import BOS, EOS, PAD, Seq2SeqTransformer


class Stepper:
    """Next-token logits for the rows being decoded, by cache or by recomputation."""

    def __init__(self, model: Seq2SeqTransformer, source: torch.Tensor, cache: bool) -> None:
        self.model = model
        memory, mask = model.encode(source)
        self.cache = model.new_cache(memory, mask) if cache else None
        self.memory, self.mask = memory, mask

    def logits(self, prefix: torch.Tensor) -> torch.Tensor:
        if self.cache is not None:
            return self.model.decode_step(prefix[:, -1], self.cache)
        return self.model.decode(prefix, self.memory, self.mask)[:, -1]

    def select_beams(self, rows: torch.Tensor) -> None:
        """Reorder the decoder's state to the surviving beams; every beam of a source reads the same
        encoder output, so only the self-attention cache moves (recomputation keeps nothing)."""
        if self.cache is not None:
            self.cache.select(rows, memory=False)


def strip(ids: list[int]) -> list[int]:
    """Tokens up to the first </s>, without padding."""
    out = []
    for token in ids:
        if token == EOS:
            break
        if token != PAD:
            out.append(token)
    return out


@torch.no_grad()
def greedy_decode(model: Seq2SeqTransformer, source: torch.Tensor, max_len: int, cache: bool = True) -> list[list[int]]:
    model.eval()
    batch = source.shape[0]
    stepper = Stepper(model, source, cache)
    prefix = torch.full((batch, 1), BOS, dtype=torch.long, device=source.device)
    done = torch.zeros(batch, dtype=torch.bool, device=source.device)
    for _ in range(max_len):
        token = stepper.logits(prefix).argmax(-1)
        token = torch.where(done, torch.full_like(token, PAD), token)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        done |= token == EOS
        if bool(done.all()):
            break
    return [strip(row) for row in prefix[:, 1:].tolist()]


def length_penalty(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    return ((5.0 + lengths.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: Seq2SeqTransformer,
    source: torch.Tensor,
    max_len: int,
    beam: int = 5,
    alpha: float = 0.6,
    cache: bool = True,
) -> list[list[int]]:
    """The best of `beam` hypotheses per source row (beam 1 is greedy decoding)."""
    if beam == 1:
        return greedy_decode(model, source, max_len, cache)
    model.eval()
    batch, device = source.shape[0], source.device
    rows = torch.arange(batch, device=device).repeat_interleave(beam)
    stepper = Stepper(model, source[rows], cache)
    prefix = torch.full((batch * beam, 1), BOS, dtype=torch.long, device=device)
    scores = torch.zeros(batch, beam, device=device)
    scores[:, 1:] = float("-inf")  # all beams start equal: keep one until the first step fans out
    lengths = torch.zeros(batch * beam, dtype=torch.long, device=device)
    done = torch.zeros(batch * beam, dtype=torch.bool, device=device)
    offsets = (torch.arange(batch, device=device) * beam)[:, None]
    for _ in range(max_len):
        log_probs = F.log_softmax(stepper.logits(prefix).float(), dim=-1)
        vocab = log_probs.shape[-1]
        if bool(done.any()):  # a finished hypothesis extends with padding only, its score unchanged
            log_probs = log_probs.masked_fill(done[:, None], float("-inf"))
            log_probs[:, PAD] = torch.where(done, 0.0, log_probs[:, PAD])
        candidates = (scores.view(-1, 1) + log_probs).view(batch, beam * vocab)
        scores, chosen = candidates.topk(beam, dim=-1)
        origin = (offsets + torch.div(chosen, vocab, rounding_mode="floor")).view(-1)
        token = (chosen % vocab).view(-1)
        prefix = torch.cat([prefix[origin], token[:, None]], dim=1)
        lengths, done = lengths[origin], done[origin]
        lengths = lengths + (~done).long()
        done = done | (token == EOS)
        stepper.select_beams(origin)
        if bool(done.all()):
            break
    normalized = scores / length_penalty(lengths.view(batch, beam), alpha)
    best = (offsets[:, 0] + normalized.argmax(-1)).tolist()
    hypotheses = prefix[:, 1:].tolist()
    return [strip(hypotheses[i]) for i in best]
