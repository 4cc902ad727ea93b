"""`predict` and `serve` with `--engine onnx` for detection runs: the graph `export --format onnx` wrote
(modelforge.detection.export) in place of the torch detector.

The run's own code still letterboxes the images, applies the score threshold and the optional NMS and
maps the boxes back to each image's pixels (modelforge.detection.run.detect_pixels); onnxruntime runs
the detector and its decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelforge.detection.run import DetectorRun, load_detector_run


@dataclass
class OnnxDetector:
    """What detect_pixels asks of a detector (`eval`, a forward pass, `decode`), answered by the graph:
    `images` → `detections` (N × k × 6: x1 y1 x2 y2 as fractions of the side, score, class index)."""

    session: Any
    side: int

    def eval(self) -> OnnxDetector:
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"images": images.numpy()})[0])

    def decode(self, raw: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N × k × 4 boxes x1 y1 x2 y2 in input pixels, N × k scores, N × k class indices), as the
        detector's decode; k is at most the max_detections the graph was exported with."""
        rows = raw[:, :top_k]
        return rows[..., :4] * self.side, rows[..., 4], rows[..., 5].round().long()


def load_onnx_detector_run(run_dir: str | Path, threads: int | None = None) -> DetectorRun:
    """The detection run with its exported graph (RUN_DIR/model.onnx) in place of the torch detector."""
    from modelforge.export.graphs import exported_graph
    from modelforge.export.onnx import onnx_session

    run = load_detector_run(run_dir)
    run.model = OnnxDetector(onnx_session(exported_graph(run_dir), threads), run.side)
    return run
