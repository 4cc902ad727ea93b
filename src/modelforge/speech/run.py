"""A finished speech-recognition run, loaded from its directory: transcribe, predict, evaluate.

RUN_DIR/
  config.yaml          resolved config
  tokens.json          the characters (index 0: the CTC blank), lower-cased or not; the lexicon's words
  preprocessing.json   audio and transcript columns, sample rate, mel bands, window and hop
  model.safetensors    final weights (the best validation-CER epoch's)
  model.json           type, options, vocabulary, parameters (written last)
  metrics.jsonl        one row per epoch: train CTC loss, valid CER and WER (beam 1), lr, seconds
  eval.json            test (else valid) WER and CER with the configured beam
  checkpoints/         while training: resumable state (training/checkpoint.py)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from modelforge.config import RunConfig, SpeechConfig
from modelforge.data.audio import warp_bands
from modelforge.errors import DataError, RunError
from modelforge.models import build_model
from modelforge.models.speech import SpeechSpec
from modelforge.run import RunDirectory, read_finished_run
from modelforge.speech.data import Clips, clip_features, clips_features, read_clips
from modelforge.speech.decode import Lexicon, prefix_beam_search
from modelforge.speech.tokens import Characters, load_characters

REQUIRED_FILES = ("config.yaml", "tokens.json", "preprocessing.json", "model.safetensors", "model.json")
DECODE_BATCH = 32


def settings_of(config: RunConfig) -> SpeechConfig:
    return config.speech or SpeechConfig()


def pad_features(features: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """B × n_mels × longest frames (zero-padded: the normalised mean) and each clip's frame count."""
    lengths = torch.tensor([f.shape[1] for f in features], dtype=torch.long)
    batch = torch.zeros(len(features), features[0].shape[0], int(lengths.max()))
    for i, f in enumerate(features):
        batch[i, :, : f.shape[1]] = torch.from_numpy(f)
    return batch, lengths


@torch.no_grad()
def frame_log_probs(
    model: nn.Module, features: Sequence[np.ndarray], batch_size: int = DECODE_BATCH
) -> list[np.ndarray]:
    """Each clip's frames × vocab log-probabilities, in input order (batches of similar length)."""
    model.eval()
    order = sorted(range(len(features)), key=lambda i: features[i].shape[1])
    out: list[np.ndarray] = [np.empty(0) for _ in features]
    for begin in range(0, len(order), batch_size):
        picked = order[begin : begin + batch_size]
        batch, lengths = pad_features([features[i] for i in picked])
        logits, frames = model(batch, lengths)
        log_probs = logits.float().log_softmax(-1).numpy()
        for row, index in enumerate(picked):
            out[index] = log_probs[row, : int(frames[row])]
    return out


def warped_log_probs(
    model: nn.Module, features: Sequence[np.ndarray], warps: Sequence[float], batch_size: int = DECODE_BATCH
) -> list[np.ndarray]:
    """`frame_log_probs` of the mean of the frame probabilities over band warps (`warp_bands`: the same
    frames, the bands stretched), so a voice between the training speakers' and the warps' is heard at both.
    One warp of 1.0 is the plain forward."""
    total: list[np.ndarray] | None = None
    for warp in warps:
        log_probs = frame_log_probs(model, [warp_bands(f, warp) for f in features], batch_size)
        total = log_probs if total is None else [np.logaddexp(a, b) for a, b in zip(total, log_probs, strict=True)]
    assert total is not None
    return [summed - np.log(len(warps)) for summed in total]


def transcribe_features(
    model: nn.Module, characters: Characters, features: Sequence[np.ndarray], beam: int, warps: Sequence[float] = (1.0,)
) -> list[str]:
    lexicon = Lexicon.of(characters)
    return [
        characters.decode(prefix_beam_search(lp, beam, lexicon=lexicon))
        for lp in warped_log_probs(model, features, warps)
    ]


@dataclass
class SpeechRun(RunDirectory):
    path: Path
    config: RunConfig
    model: nn.Module = field(repr=False)
    characters: Characters = field(repr=False)
    preprocessing: dict[str, Any]
    model_info: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.config.task)

    @property
    def sample_rate(self) -> int:
        return int(self.preprocessing["sample_rate"])

    @property
    def headline(self) -> tuple[str, ...]:
        return ("wer", "cer")

    def features_of(self, samples: np.ndarray, rate: int) -> np.ndarray:
        from modelforge.speech.data import check_length

        settings = settings_of(self.config)
        check_length(samples, rate, settings, "clip")
        return clip_features(samples, rate, settings, self.sample_rate)

    def transcribe(self, features: Sequence[np.ndarray], beam: int | None = None) -> list[str]:
        """Transcripts of feature matrices (`features_of` a waveform; beam: the run's speech.beam)."""
        settings = settings_of(self.config)
        width = settings.beam if beam is None else beam
        return transcribe_features(self.model, self.characters, features, width, settings.warps) if features else []

    def transcribe_files(self, files: Sequence[Path], beam: int | None = None) -> list[str]:
        from modelforge.speech.data import file_features

        settings = settings_of(self.config)
        return self.transcribe([file_features(Path(f), settings, self.sample_rate) for f in files], beam)

    def read(self, data: str | Path, needs_text: bool) -> Clips:
        if isinstance(data, pd.DataFrame):
            raise DataError("speech runs read a table file (its WAV paths are relative to it), not a DataFrame")
        return read_clips(
            data, self.preprocessing["target"], self.preprocessing["audio"], self.config.data.bad_rows, needs_text
        )

    def predict(self, data: str | Path) -> pd.DataFrame:
        """A `prediction` column: the transcript of each row's clip (and `row`, the table row)."""
        clips = self.read(data, needs_text=False)
        features = clips_features(clips, settings_of(self.config), self.sample_rate)
        return pd.DataFrame({"row": clips.rows, "prediction": self.transcribe(features)})

    def evaluate(self, data: str | Path, beam: int | None = None) -> dict[str, Any]:
        """WER and CER (jiwer) of the transcripts of a table's clips against its transcript column."""
        from modelforge.speech.metrics import speech_metrics

        settings = settings_of(self.config)
        clips = self.read(data, needs_text=True)
        features = clips_features(clips, settings, self.sample_rate)
        references = [self.characters.normalize(t) for t in clips.texts or []]
        width = settings.beam if beam is None else beam
        metrics = speech_metrics(self.transcribe(features, width), references)
        return {"split": str(data), **metrics, "beam": width, "warps": settings.warps}


def load_speech_run(path: str | Path) -> SpeechRun:
    """Rebuild config, characters and model from a speech-recognition run directory."""
    from modelforge.compress.run_copy import load_run_weights

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: run directory not found")
    config, info = read_finished_run(path, REQUIRED_FILES)
    characters = load_characters(path / "tokens.json")
    preprocessing = json.loads((path / "preprocessing.json").read_text())
    spec = SpeechSpec(int(preprocessing["n_mels"]), characters.vocab_size)
    model = build_model(info["type"], spec, spec.vocab, info["options"])
    # a `modelforge compress` copy holds int8 weights, rebuilt into the model's quantized skeleton
    model = load_run_weights(model, path / "model.safetensors", info.get("quantization"))
    model.eval()
    return SpeechRun(path, config, model, characters, preprocessing, info)


def write_transcripts(run_dir: str | Path, data: Path, out: Path | None, **options: Any) -> str:
    """`modelforge predict RUN --data TABLE [--out preds.csv]`: row and prediction per clip of the table; the
    CSV text, or where it went (the task's predict entry)."""
    from modelforge.files import atomic_write_text

    for name, value in options.items():
        if name == "engine" and value == "torch":
            continue
        flag = "--" + name.replace("_", "-")
        raise DataError(f"{flag}: not for speech-recognition runs")
    frame = load_speech_run(run_dir).predict(data)
    text = frame.to_csv(index=False)
    if out is None:
        return text
    atomic_write_text(out, text)
    return f"wrote {len(frame)} predictions to {out}"
