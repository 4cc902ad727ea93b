"""CTC decoding of per-frame log-probabilities: greedy, and a prefix beam search, optionally kept to a
lexicon (no language model).

Greedy takes the best symbol of each frame, merges repeats and drops blanks. The prefix beam search
keeps the `beam` most probable *label sequences* (summing over every frame alignment that yields each,
blank-ending and symbol-ending apart), so it finds the sequence the greedy path splits its probability
over; with beam 1 it is greedy up to ties. With a `Lexicon`, a prefix grows only into the beginning of a
lexicon word, a space follows only a whole word, and the answer ends on one: the decoder writes words,
never near-words ("fivee").
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from modelforge.speech.tokens import BLANK, Characters

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


@dataclass(frozen=True)
class Lexicon:
    """The words a transcript may hold, as symbol ids, every beginning of one, and the space's id (None
    where no training transcript had two words)."""

    words: frozenset[tuple[int, ...]]
    beginnings: frozenset[tuple[int, ...]]
    space: int | None

    @classmethod
    def of(cls, characters: Characters) -> Lexicon | None:
        """The lexicon of `characters.words`; None when it has none."""
        if not characters.words:
            return None
        words = frozenset(tuple(characters.encode(word)) for word in characters.words)
        beginnings = frozenset(word[:end] for word in words for end in range(1, len(word) + 1))
        space = characters.characters.index(" ") + 1 if " " in characters.characters else None
        return cls(words, beginnings, space)

    def last_word(self, prefix: tuple[int, ...]) -> tuple[int, ...]:
        for position in range(len(prefix) - 1, -1, -1):
            if prefix[position] == self.space:
                return prefix[position + 1 :]
        return prefix

    def allows(self, prefix: tuple[int, ...], symbol: int) -> bool:
        """Whether `prefix` may grow by `symbol` (a new symbol, not a merged repeat)."""
        word = self.last_word(prefix)
        if symbol == self.space:
            return word in self.words
        return (*word, symbol) in self.beginnings

    def ends(self, prefix: tuple[int, ...]) -> bool:
        return not prefix or self.last_word(prefix) in self.words


def prefix_beam_search(
    log_probs: np.ndarray, beam: int, prune: float = -12.0, lexicon: Lexicon | None = None
) -> list[int]:
    """The most probable label sequence found keeping `beam` prefixes per frame (symbols whose frame
    log-probability is under `prune` are not tried: they cannot move a beam); with `lexicon`, the most
    probable sequence of its words found (when no beam ends on a whole word, the most probable without its
    unfinished last word)."""
    if beam <= 1 and lexicon is None:
        return greedy_decode(log_probs)
    # prefix → (log P ending in blank, log P ending in its last symbol)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for frame in log_probs:
        candidates = [s for s in np.flatnonzero(frame >= prune).tolist()] or [int(frame.argmax())]
        if BLANK not in candidates:  # the blank keeps every beam alive where the lexicon forbids the likely symbols
            candidates.append(BLANK)
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
                if symbol == last:  # a repeat merges into the prefix; only across a blank does it extend
                    same = following[prefix]
                    same[1] = _add(same[1], p_symbol + p)
                if lexicon is not None and not lexicon.allows(prefix, symbol):
                    continue
                extended = following[(*prefix, symbol)]
                extended[1] = _add(extended[1], (p_blank if symbol == last else total) + p)
        ranked = sorted(following.items(), key=lambda item: _add(*item[1]), reverse=True)[:beam]
        beams = {prefix: (scores[0], scores[1]) for prefix, scores in ranked}
    finished = [item for item in beams.items() if lexicon is None or lexicon.ends(item[0])]
    if finished:
        return list(max(finished, key=lambda item: _add(*item[1]))[0])
    assert lexicon is not None  # without one every beam is finished
    best = list(max(beams.items(), key=lambda item: _add(*item[1]))[0])  # its words but the last are whole
    cut = max((i for i, symbol in enumerate(best) if symbol == lexicon.space), default=0)
    return best[:cut]
