"""`modelforge generate`: text from a language-model run, streamed as it is decoded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def generate(
    run: Annotated[Path, typer.Argument(help="language-modeling run directory")],
    prompt: Annotated[str, typer.Option(help="text to continue")] = "",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 200,
    temperature: Annotated[float, typer.Option(help="0 = greedy; higher = more varied")] = 1.0,
    top_k: Annotated[int | None, typer.Option(help="sample among the k most likely tokens")] = None,
    top_p: Annotated[float | None, typer.Option(help="sample from the smallest set with this probability")] = None,
    seed: Annotated[int | None, typer.Option(help="fixed seed: the same text every time")] = None,
    stream: Annotated[bool, typer.Option(help="print tokens as they are decoded")] = False,
) -> None:
    """Continue a prompt with a trained GPT (KV-cache decoding)."""
    from modelforge.text.generate import load_generator

    generator = load_generator(run)
    pieces = generator.stream(prompt, max_new_tokens, temperature, top_k, top_p, seed)
    if stream:
        typer.echo(prompt, nl=False)
        for piece in pieces:
            typer.echo(piece, nl=False)
        typer.echo("")
    else:
        typer.echo(prompt + "".join(pieces))


def register(app: typer.Typer) -> None:
    app.command(name="generate")(generate)
