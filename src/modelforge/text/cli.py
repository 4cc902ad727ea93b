"""`modelforge generate`: text from a language-model run, streamed as it is decoded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def generate(
    run: Annotated[Path, typer.Argument(help="language-modeling or generation run directory")],
    prompt: Annotated[str, typer.Option(help="text to continue")] = "",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 200,
    temperature: Annotated[float, typer.Option(help="0 = greedy; higher = more varied")] = 1.0,
    top_k: Annotated[int | None, typer.Option(help="sample among the k most likely tokens")] = None,
    top_p: Annotated[float | None, typer.Option(help="sample from the smallest set with this probability")] = None,
    seed: Annotated[int | None, typer.Option(help="fixed seed: the same text every time")] = None,
    stream: Annotated[bool, typer.Option(help="print tokens as they are decoded")] = False,
    n: Annotated[int, typer.Option(help="image runs: images to generate")] = 64,
    out: Annotated[Path | None, typer.Option(help="image runs: PNG grid to write")] = None,
    label: Annotated[str | None, typer.Option(help="image runs: class to generate (default: all in turn)")] = None,
    mode: Annotated[
        str, typer.Option(help="image runs: sample | reconstruct | interpolate (VAE, with --data)")
    ] = "sample",
    data: Annotated[Path | None, typer.Option(help="image runs: images to reconstruct or interpolate")] = None,
    score_with: Annotated[Path | None, typer.Option(help="image runs: classifier run that scores the samples")] = None,
    engine: Annotated[str, typer.Option(help="torch | onnx (after `modelforge export RUN --format onnx`)")] = "torch",
    beam: Annotated[
        int | None, typer.Option(min=1, help="seq2seq runs: beam width (default: the run's; 1 = greedy)")
    ] = None,
) -> None:
    """Continue a prompt with a trained GPT (KV-cache decoding), translate it with a seq2seq run, or draw
    images from a generation run."""
    from modelforge.tasks import task_of_run

    task = task_of_run(run, "generate")
    options = dict(prompt=prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
    options |= dict(seed=seed, stream=stream, n=n, out=out, label=label, mode=mode, data=data, score_with=score_with)
    if engine not in ("torch", "onnx"):
        from modelforge.errors import ModelforgeError

        raise ModelforgeError(f"--engine: expected torch or onnx, got {engine!r}")
    options["engine"] = engine
    if beam is not None:
        options["beam"] = beam
    task.call("generate", task.generate, run, **options)


def generate_text(
    run: Path,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int | None,
    stream: bool,
    engine: str = "torch",
    **image_options: Any,
) -> None:
    """`modelforge generate` on a language-modeling run: the prompt and its continuation on stdout."""
    from modelforge.text.generate import load_generator

    if engine == "onnx":
        from modelforge.export.gpt_onnx import load_onnx_generator

        generator = load_onnx_generator(run)
    else:
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
