"""`modelforge serve` for speech runs: `{"records": [{"audio": "<base64 WAV or data:audio/wav;base64,...>"}]}`
→ `{"predictions": [{"text": "..."}]}`.

Answered on the predict route through the server's dynamic batcher, as the other record services are:
each clip is decoded and turned into log-mel frames while the request is validated (a clip that does not
decode, or lasts longer than speech.max_seconds, is a 422 naming the record), and the batch step runs one
forward pass over the clips of several requests. File paths are never read from requests.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelforge.errors import DataError
from modelforge.serve.records import FieldProblem, RecordSchema, RecordsError
from modelforge.serve.services import ModelSpec, PredictService, ServeError, split_answers
from modelforge.speech.run import SpeechRun, load_speech_run

AUDIO_FIELD = "audio"
MAX_AUDIO_BYTES = 32 * 1024 * 1024


@dataclass
class SpeechEngine:
    """What PredictService.describe reads of its predictor (the engine's name)."""

    run: SpeechRun
    engine: str = "torch"

    def outputs(self, frame: Any) -> np.ndarray:
        raise NotImplementedError("a speech run answers with text: see SpeechService.predict_batch")


def decode_wav_text(value: str) -> tuple[np.ndarray, int]:
    """A base64 WAV (bare, or as a data: URL) → mono samples and rate; ValueError saying what is wrong."""
    from modelforge.data.audio import read_wav

    payload = value
    if value.startswith("data:"):
        header, _, payload = value.partition(",")
        if not header.endswith(";base64"):
            raise ValueError("audio data URLs must be base64-encoded (data:audio/wav;base64,...)")
    if len(payload) > MAX_AUDIO_BYTES * 4 // 3:
        raise ValueError(f"the clip is over {MAX_AUDIO_BYTES // (1024 * 1024)} MiB")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected a base64 WAV or a data:audio/wav;base64 URL; file paths are not read") from None
    with tempfile.TemporaryDirectory() as folder:  # read_wav reads files (PCM and float WAVs alike)
        path = Path(folder) / "clip.wav"
        path.write_bytes(raw)
        try:
            return read_wav(path)
        except DataError as exc:
            raise ValueError(str(exc).replace(f"{path}: ", "")) from None


@dataclass
class SpeechService(PredictService):
    """A speech run answering batches of `{audio}` records with `{"text": transcript}`."""

    def validate(self, records: list[dict[str, Any]], k: int | None) -> list[dict[str, Any]]:
        """Records with their clip's features, or RecordsError naming each bad record."""
        cleaned = super().validate(records, k)  # the audio field is present and a string
        run: SpeechRun = self.predictor.run  # type: ignore[attr-defined]
        problems = []
        for row, record in enumerate(cleaned):
            try:
                record["features"] = run.features_of(*decode_wav_text(str(record[AUDIO_FIELD] or "")))
            except (ValueError, DataError) as exc:
                problems.append(FieldProblem(row, AUDIO_FIELD, str(exc)))
        if problems:
            raise RecordsError(problems)
        return cleaned

    def predict_batch(self, items: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        run: SpeechRun = self.predictor.run  # type: ignore[attr-defined]
        texts = run.transcribe([record["features"] for item in items for record in item])
        return split_answers([{"text": text} for text in texts], items)


def load_speech_service(spec: ModelSpec, engine: str = "torch", threads: int | None = None) -> SpeechService:
    if engine != "torch":
        raise ServeError(f"{spec.path}: speech-recognition runs are served with --engine torch, got {engine!r}")
    run = load_speech_run(Path(spec.path))
    return SpeechService(
        name=spec.name,
        task=run.task,
        path=spec.path,
        predictor=SpeechEngine(run),
        schema=RecordSchema({AUDIO_FIELD: "text"}, frozenset({run.preprocessing["target"]})),
        classes=[],
        hashed_columns=[],
        features=[
            {
                "name": AUDIO_FIELD,
                "kind": "audio",
                "note": f"a base64 WAV or data:audio/wav;base64 URL; mono or mixed to mono, resampled to "
                f"{run.sample_rate} Hz",
            }
        ],
    )
