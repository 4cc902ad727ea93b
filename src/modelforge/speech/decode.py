"""CTC decoding of per-frame log-probabilities: greedy, and a prefix beam search (no language model).

Greedy takes the best symbol of each frame, merges repeats and drops blanks. The prefix beam search
keeps the `beam` most probable *label sequences* (summing over every frame alignment that yields each,
blank-ending and symbol-ending apart), so it finds the sequence the greedy path splits its probability
over; with beam 1 it is greedy up to ties.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from modelforge.speech.tokens import BLANK

NEG_INF = -math.inf


def greedy_decode(log_probs: np.ndarray) -> list[int]:
    """Frames × vocab log-probabilities → symbol ids: best per frame, repeats merged, blanks dropped."""
    best = log_probs.argmax(axis=1)
    out, previous = [], BLANK
    for symbol in best.tolist():
        if symbol != previous and symbol != BLANK:
            out.append(symbol)
        previous = symbol
    return out


def _add(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    high = max(a, b)
    return high + math.log1p(math.exp(-abs(a - b)))


def prefix_beam_search(log_probs: np.ndarray, beam: int, prune: float = -12.0) -> list[int]:
    """The most probable label sequence found keeping `beam` prefixes per frame (symbols whose frame
    log-probability is under `prune` are not tried: they cannot move a beam)."""
    if beam <= 1:
        return greedy_decode(log_probs)
    # prefix → (log P ending in blank, log P ending in its last symbol)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for frame in log_probs:
        candidates = [s for s in np.flatnonzero(frame >= prune).tolist()] or [int(frame.argmax())]
        following: defaultdict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (p_blank, p_symbol) in beams.items():
            total = _add(p_blank, p_symbol)
            for symbol in candidates:
                p = float(frame[symbol])
                if symbol == BLANK:
                    entry = following[prefix]
                    entry[0] = _add(entry[0], total + p)
                    continue
                last = prefix[-1] if prefix else None
                extended = following[(*prefix, symbol)]
                if symbol == last:  # a repeat extends only across a blank; without one it merges
                    extended[1] = _add(extended[1], p_blank + p)
                    same = following[prefix]
                    same[1] = _add(same[1], p_symbol + p)
                else:
                    extended[1] = _add(extended[1], total + p)
        ranked = sorted(following.items(), key=lambda item: _add(*item[1]), reverse=True)[:beam]
        beams = {prefix: (scores[0], scores[1]) for prefix, scores in ranked}
    best = max(beams.items(), key=lambda item: _add(*item[1]))[0]
    return list(best)
