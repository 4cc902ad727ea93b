"""`modelforge export RUN --format onnx` for detection runs: the detector with its decoding in the graph.

Graph: `images` (N × C × S × S floats in [0, 1], letterboxed as preprocessing.json says) → `detections`
(N × k × 6: x1 y1 x2 y2 as fractions of the letterboxed side S, score, class index; k is
detection.max_detections, best first; rows with score 0 are padding). Peak picking (3×3 max-pool) and
the class-aware top-k are inside the graph; the optional class-aware NMS (`detection.nms_iou`) and
undoing the letterbox stay outside, in the caller (modelforge.detection.boxes.batched_nms is ~20 lines
of torch to port).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelforge.detection.recipe import read_splits
from modelforge.detection.run import load_detector_run, settings_of
from modelforge.errors import ModelforgeError
from modelforge.export.graphs import export_module
from modelforge.export.parity import Parity

SAMPLE_IMAGES = 16


class DecodedDetector(nn.Module):
    def __init__(self, model: nn.Module, top_k: int) -> None:
        super().__init__()
        self.model, self.top_k = model, top_k

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, scores, labels = self.model.decode(self.model(images), self.top_k)  # type: ignore[operator]
        found = (scores > 0).to(scores.dtype)[..., None]  # padding rows all zero, whatever order ties take
        boxes = boxes / images.shape[-1]  # fractions: parity is checked in absolute terms
        return torch.cat([boxes, scores[..., None], labels[..., None].to(scores.dtype)], dim=2) * found


def export_detector_run(run_dir: Path, dest: Path) -> Parity:
    """The decoded detector, checked against the eager one on letterboxed images of the run's validation split."""
    from modelforge.detection.data import load_images

    run = load_detector_run(run_dir)
    if run.model_info.get("quantization"):
        raise ModelforgeError(f"{run_dir}: an int8 run; export the float run it was compressed from")
    try:
        _, valid, _ = read_splits(run.config)
        pixels, _, _ = load_images(valid.take(np.arange(min(len(valid), SAMPLE_IMAGES))), run.side, run.channels)
        images = torch.from_numpy(pixels).float() / 255.0
    except (ModelforgeError, OSError):  # the data moved: the graph is still checked, on noise
        images = torch.rand(SAMPLE_IMAGES, run.channels, run.side, run.side, generator=torch.Generator().manual_seed(0))
    module = DecodedDetector(run.model, settings_of(run.config).max_detections)
    return export_module(module, {"images": images}, dest, "detections")
