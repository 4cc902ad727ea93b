"""The characters a speech run writes: those of its training transcripts, index 0 the CTC blank.

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
    """Characters ↔ ids 1..N (0 is the blank); `lowercase` says whether transcripts are lower-cased first."""

    characters: tuple[str, ...]
    lowercase: bool

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


def fit_characters(texts: list[str], lowercase: bool) -> Characters:
    seen = {c for text in texts for c in (text.lower() if lowercase else text)}
    return Characters(tuple(sorted(seen)), lowercase)


def save_characters(characters: Characters, path: Path) -> None:
    from modelforge.files import atomic_write_json

    atomic_write_json(
        path, {"blank": BLANK, "characters": list(characters.characters), "lowercase": characters.lowercase}
    )


def load_characters(path: Path) -> Characters:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Characters(tuple(raw["characters"]), bool(raw["lowercase"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path}: not a speech run's character list ({exc.__class__.__name__})") from None
