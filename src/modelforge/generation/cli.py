"""`modelforge generate` on a generation run: an image grid (samples, reconstructions or
interpolations), optionally scored by a classifier run. The verb itself lives in
modelforge.text.cli (one `generate` for text and images); it hands image runs to `generate_images`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def generate_images(
    run: Path,
    n: int,
    out: Path | None,
    label: str | None,
    seed: int | None,
    temperature: float,
    mode: str,
    data: Path | None,
    score_with: Path | None,
    engine: str = "torch",
    **text_options: Any,
) -> None:
    """Write the grid to `out` (PNG) and print the classifier's figures as JSON when asked."""
    from modelforge.errors import ModelforgeError
    from modelforge.generation.run import load_generator_run, write_grid

    if mode not in ("sample", "reconstruct", "interpolate"):
        raise ModelforgeError(f"--mode: expected sample, reconstruct or interpolate, got {mode!r}")
    if out is None and score_with is None:
        raise ModelforgeError("generate: give --out grid.png (and/or --score-with CLASSIFIER_RUN)")
    if engine == "onnx" and mode != "sample":
        raise ModelforgeError(f"--engine onnx: the exported graph is the decoder; --mode {mode} needs --engine torch")
    if engine == "onnx":
        from modelforge.export.graphs import load_onnx_generator_run

        loaded = load_onnx_generator_run(run)
    else:
        loaded = load_generator_run(run)
    columns = None
    if mode == "sample":
        images, asked = loaded.sample(n, label, seed or 0, temperature)
        columns = len(loaded.classes) if label is None and loaded.classes and n % len(loaded.classes) == 0 else None
    else:
        if data is None:
            raise ModelforgeError(f"--mode {mode}: give --data with images in the training columns")
        if score_with is not None:
            raise ModelforgeError("--score-with scores samples; use it with --mode sample")
        steps = 8
        images = loaded.reconstruct(data, n) if mode == "reconstruct" else loaded.interpolate(data, max(n // steps, 1))
        columns = 2 if mode == "reconstruct" else steps
    if out is not None:
        write_grid(images, out, columns)
        typer.echo(f"wrote {len(images)} images to {out}", err=True)
    if score_with is not None:
        from modelforge.generation.score import load_classifier, score_samples

        real = loaded.to_data_layout(loaded.held_out_images())
        figures = score_samples(load_classifier(score_with), loaded.to_data_layout(images), asked, real)
        typer.echo(json.dumps(figures, indent=2))
