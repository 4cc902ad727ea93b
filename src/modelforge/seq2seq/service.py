"""`modelforge serve` for seq2seq runs: `{"records": [{"de": "..."}]}` → `{"predictions": [{"text": "..."}]}`.

Answered on the predict route through the server's dynamic batcher, like a classifier's records: the
service is a PredictService whose batch step translates instead of scoring (records are validated by
the same RecordSchema: one text column, the run's source name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelforge.seq2seq.run import Seq2SeqRun, load_seq2seq_run
from modelforge.serve.records import RecordSchema
from modelforge.serve.services import ModelSpec, PredictService, ServeError, split_answers


@dataclass
class TranslationEngine:
    """What PredictService.describe reads of its predictor (the engine's name)."""

    run: Seq2SeqRun
    engine: str = "torch"

    def outputs(self, frame: Any) -> np.ndarray:
        raise NotImplementedError("a seq2seq run answers with text: see Seq2SeqService.predict_batch")


@dataclass
class Seq2SeqService(PredictService):
    """A seq2seq run answering batches of `{source: text}` records with `{"text": translation}`."""

    def predict_batch(self, items: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        run: Seq2SeqRun = self.predictor.run  # type: ignore[attr-defined]
        texts = [str(record[run.source_name] or "") for item in items for record in item]
        return split_answers([{"text": text} for text in run.translate(texts)], items)


def load_seq2seq_service(spec: ModelSpec, engine: str = "torch", threads: int | None = None) -> Seq2SeqService:
    if engine != "torch":
        raise ServeError(f"{spec.path}: seq2seq runs are served with --engine torch, got {engine!r}")
    run = load_seq2seq_run(Path(spec.path))
    source = run.source_name
    return Seq2SeqService(
        name=spec.name,
        task=run.task,
        path=spec.path,
        predictor=TranslationEngine(run),
        schema=RecordSchema({source: "text"}, frozenset({run.target_name})),
        classes=[],
        hashed_columns=[],
        features=[{"name": source, "kind": "text", "example": run.preprocessing.get("example", "")}],
    )
