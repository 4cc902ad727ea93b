"""`modelforge serve` for detection runs: `{"records": [{"image": "data:image/png;base64,..."}]}` →
`{"predictions": [{"boxes": [{"x", "y", "w", "h", "label", "score"}, ...]}]}`.

Answered on the predict route through the server's dynamic batcher, as the image classifiers are: the
image arrives as a base64 data URL (or a nested list of pixels) and is checked by the same RecordSchema;
the batch step letterboxes the images of several requests and runs one forward pass over them.
Boxes are in the sent image's pixels; `score_threshold` is the run's `detection.score_threshold`.
`--engine onnx` runs the exported graph (RUN_DIR/model.onnx) in place of the torch detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelforge.detection.run import DetectorRun, load_detector_run
from modelforge.serve.records import RecordSchema
from modelforge.serve.services import ModelSpec, PredictService, ServeError, split_answers

IMAGE_FIELD = "image"


@dataclass
class DetectionEngine:
    """What PredictService.describe reads of its predictor (the engine's name)."""

    run: DetectorRun
    engine: str = "torch"

    def outputs(self, frame: Any) -> np.ndarray:
        raise NotImplementedError("a detection run answers with boxes: see DetectionService.predict_batch")


@dataclass
class DetectionService(PredictService):
    """A detection run answering batches of `{image}` records with their boxes."""

    def predict_batch(self, items: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        run: DetectorRun = self.predictor.run  # type: ignore[attr-defined]
        images = []
        for item in items:
            for record in item:
                pixels = np.asarray(record[IMAGE_FIELD], dtype=np.float32)
                images.append(pixels / 255.0 if pixels.max(initial=0.0) > 1.0 else pixels)  # lists may be 0–255
        answers = [
            {
                "boxes": [
                    {
                        "x": round(float(box[0]), 2),
                        "y": round(float(box[1]), 2),
                        "w": round(float(box[2]), 2),
                        "h": round(float(box[3]), 2),
                        "label": run.classes[int(label)],
                        "score": round(float(score), 4),
                    }
                    for box, score, label in zip(found.boxes, found.scores, found.labels, strict=True)
                ]
            }
            for found in run.detect(images)
        ]
        return split_answers(answers, items)


def load_detection_service(spec: ModelSpec, engine: str = "torch", threads: int | None = None) -> DetectionService:
    if engine not in ("torch", "eager", "onnx"):
        raise ServeError(f"{spec.path}: detection runs are served with --engine torch, eager or onnx, got {engine!r}")
    if engine == "onnx":
        from modelforge.detection.onnx import load_onnx_detector_run

        predictor = DetectionEngine(load_onnx_detector_run(spec.path, threads), engine="onnxruntime on model.onnx")
    else:
        predictor = DetectionEngine(load_detector_run(Path(spec.path)))
    run = predictor.run
    return DetectionService(
        name=spec.name,
        task=run.task,
        path=spec.path,
        predictor=predictor,
        schema=RecordSchema({IMAGE_FIELD: "image"}),
        classes=run.classes,
        hashed_columns=[],
        features=[
            {
                "name": IMAGE_FIELD,
                "kind": "image",
                "shape": [run.channels, run.side, run.side],
                "pixel_range": [0.0, 1.0],
                "note": "any size: letterboxed to the shape; boxes come back in the sent image's pixels",
            }
        ],
    )
