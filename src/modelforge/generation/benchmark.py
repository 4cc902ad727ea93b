"""What `modelforge benchmark` times on a generation run (`vae`, `gan`).

    modelforge benchmark runs/digits-vae --engine all   # torch and onnx (after `export --format onnx`)

One request is one image sampled (a latent draw through the decoder, as `generate` and the
`images` endpoint do); a batch is 64 images, the classes in turn for a class-conditioned run.
The engine is the run's module or its exported decoder standing in for it (`OnnxSampler`:
the same latent draws, decoded in onnxruntime).
"""

from __future__ import annotations

from typing import Any

import torch

from modelforge.inference import Workload


def generator_workload(run: Any, batch_rows: int = 64) -> Workload:
    """One image sampled (batch 1), and `batch_rows` images."""
    labels = run.labels_for(batch_rows)  # None for an unconditional run
    draws = torch.Generator().manual_seed(0)

    def one(index: int) -> torch.Tensor:
        asked = None if labels is None else labels[index % batch_rows : index % batch_rows + 1]
        with torch.no_grad():
            return run.model.sample(asked, 1, draws)

    def batch(_: int) -> torch.Tensor:
        with torch.no_grad():
            return run.model.sample(labels, batch_rows, draws)

    return Workload(f"one image sampled; batch: {batch_rows} images", one, batch, batch_rows)
