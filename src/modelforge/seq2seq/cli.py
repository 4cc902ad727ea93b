"""`modelforge generate RUN --prompt TEXT [--beam K]` on a seq2seq run: the translation on stdout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def generate_translation(run: Path, prompt: str, max_new_tokens: int, beam: int | None = None, **unused: Any) -> None:
    """Print the translation of `prompt` (beam: the run's seq2seq.beam unless given; 1 = greedy).
    Sampling options of the shared verb (temperature, top-k, seed, images) do not apply."""
    from modelforge.errors import DataError
    from modelforge.seq2seq.run import load_seq2seq_run

    if not prompt.strip():
        raise DataError("--prompt: give the text to translate")
    loaded = load_seq2seq_run(run)
    (translation,) = loaded.translate([prompt], beam=beam, max_new_tokens=max_new_tokens)
    typer.echo(translation)
