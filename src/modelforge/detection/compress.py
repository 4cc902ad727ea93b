"""`modelforge compress RUN --quantize int8-static` on a detection run: a new run directory whose detector
computes in int8 — convolution weights per channel, activations with ranges calibrated on images (conv +
batch norm + ReLU fused; torch.ao's FX mode, x86 backend); the two heads' outputs are joined in float.
Decoding stays float: heatmap peaks, top-k and NMS read the dequantized heads. Scored with pycocotools
on the original's held-out split (eval.json), so `runs compare` shows what int8 costs in mAP.

`--calibration` takes COCO JSON or a YOLO folder (its images, labels unused); without it, the first
CALIBRATION_IMAGES training images. Pruning, fine-tuning and int8-dynamic are refused in one line: a
detector is convolutions, which dynamic quantization leaves float.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelforge.detection.data import DetectionSet
from modelforge.errors import DataError
from modelforge.models.detector import Detector

QUANTIZATION = "int8-static"
CALIBRATION_IMAGES = 256
COPIED_FILES = ("config.yaml", "preprocessing.json")


class Int8Detector(nn.Module):
    """The int8 graph of a detector's convolutions, with the float detector's decoding."""

    decode = Detector.decode

    def __init__(self, graph: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.graph, self.n_classes = graph, n_classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.graph(images)


def int8_detector(model: Detector, calibration: list[torch.Tensor]) -> Int8Detector:
    """`model` quantized with activation ranges observed on the calibration batches (N × C × S × S floats)."""
    from modelforge.compress.quantize import static_int8

    # the heads leave the detector in one cat: quantized, the heatmap logits and the box log-distances
    # shared one int8 scale, and the boxes lost their tightness (held-out mAP 0.642 against the float
    # run's 0.733; mAP@.5 0.900 either way); with the cat in float, 0.728 at the same speed
    return Int8Detector(static_int8(model, calibration, float_ops=(torch.cat,)), model.n_classes)


def load_int8_detector(model: Detector, weights_path: Path, channels: int, side: int) -> Int8Detector:
    """The int8 model of a compressed run: the quantized structure, then its saved int8 values exactly."""
    from modelforge.compress.quantize import load_quantized_weights

    skeleton = int8_detector(model, [torch.zeros(1, channels, side, side)])
    return load_quantized_weights(skeleton, weights_path)  # type: ignore[return-value]


def calibration_images(run: Any, data: DetectionSet) -> list[torch.Tensor]:
    """Batches of up to CALIBRATION_IMAGES of `data`'s images, letterboxed as the run's, in [0, 1]."""
    from modelforge.detection.recipe import Split

    data = data.take(list(range(min(len(data), CALIBRATION_IMAGES))))
    pixels = torch.from_numpy(Split.load(data, run.side, run.channels).pixels).float() / 255.0
    return list(pixels.split(32))


def compress_detector(source: str | Path, out: str | Path, options: Any) -> Path:
    """Write the int8-static copy of a detection run to `out`; returns `out` (`compress` has checked the
    options against `Task.quantize_kinds`)."""
    from modelforge.compress.quantize import quantized_parameter_count
    from modelforge.compress.run_copy import refuse_quantized, write_quantized_copy
    from modelforge.detection.recipe import read_splits
    from modelforge.detection.run import load_detector_run

    run = load_detector_run(source)
    refuse_quantized(run, source)
    train, valid, test = read_splits(run.config)  # before anything is written: a data problem stops it here
    if options.calibration is not None and not options.calibration.exists():
        raise DataError(f"--calibration {options.calibration}: not found")
    calibration = calibration_images(run, train if options.calibration is None else run.read(options.calibration))
    quantized = int8_detector(run.model, calibration)
    held_out, split = (test, "test") if test is not None else (valid, "valid")

    def score(model: nn.Module) -> dict[str, Any]:
        run.model = model  # type: ignore[assignment]
        evaluation = {**run.evaluate(held_out), "split": split}
        return evaluation | {f"original_{key}": run.metrics.get(key) for key in ("map", "map50")}

    info = {
        "quantization": QUANTIZATION,
        "parameters": quantized_parameter_count(quantized),
        "compression": {"quantize": QUANTIZATION, "calibration_images": sum(len(b) for b in calibration)},
    }
    return write_quantized_copy(run, source, out, COPIED_FILES, quantized, info, score)
