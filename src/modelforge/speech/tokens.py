"""The characters a speech run writes: those of its training transcripts, index 0 the CTC blank; with
speech.lexicon, also the words decoding may write (the training transcripts' words).

Saved as JSON in the run directory (tokens.json); no pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modelforge.errors import RunError

BLANK = 0


@dataclass(frozen=True)
class Characters:
    """Characters ↔ ids 1..N (0 is the blank); `lowercase` says whether transcripts are lower-cased first;
    `words`: the lexicon decoding keeps to (empty: any string of the characters)."""

    characters: tuple[str, ...]
    lowercase: bool
    words: tuple[str, ...] = ()

    @property
    def vocab_size(self) -> int:
        return len(self.characters) + 1

    def normalize(self, text: str) -> str:
        return text.lower() if self.lowercase else text

    def encode(self, text: str) -> list[int]:
        """Ids of the text's known characters (an unseen one is left out: the model cannot write it)."""
        index = {c: i + 1 for i, c in enumerate(self.characters)}
        return [index[c] for c in self.normalize(text) if c in index]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.characters[i - 1] for i in ids if i != BLANK)


def fit_characters(texts: list[str], lowercase: bool, lexicon: bool = False) -> Characters:
    normalized = [text.lower() if lowercase else text for text in texts]
    seen = {c for text in normalized for c in text}
    words = tuple(sorted({word for text in normalized for word in text.split()})) if lexicon else ()
    return Characters(tuple(sorted(seen)), lowercase, words)


def save_characters(characters: Characters, path: Path) -> None:
    from modelforge.files import atomic_write_json

    atomic_write_json(
        path,
        {
            "blank": BLANK,
            "characters": list(characters.characters),
            "lowercase": characters.lowercase,
            "words": list(characters.words),
        },
    )


def load_characters(path: Path) -> Characters:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Characters(tuple(raw["characters"]), bool(raw["lowercase"]), tuple(raw.get("words", ())))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path}: not a speech run's character list ({exc.__class__.__name__})") from None
