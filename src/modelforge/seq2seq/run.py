"""A finished seq2seq run, loaded from its directory: translate, predict, evaluate.

RUN_DIR/
  config.yaml              resolved config
  source_tokenizer.json    the source side's tokenizer (with seq2seq.shared_vocab: the shared one)
  target_tokenizer.json    the target side's
  preprocessing.json       source and target names (columns, or the files' language suffixes), limits
  model.safetensors        final weights
  model.json               type, options, vocabulary sizes, parameters (written last)
  metrics.jsonl            one row per epoch: train/valid loss, valid BLEU (greedy), lr, seconds
  eval.json                test (else valid) BLEU, chrF with signatures, CER, WER, exact match
  checkpoints/             while training: resumable state (training/checkpoint.py)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from modelforge.config import ParallelFiles, RunConfig, Seq2SeqConfig
from modelforge.errors import DataError, RunError, did_you_mean
from modelforge.models import build_model
from modelforge.models.seq2seq import EOS, PAD, Seq2SeqSpec, Seq2SeqTransformer
from modelforge.run import RunDirectory, read_finished_run
from modelforge.seq2seq.decode import beam_search
from modelforge.seq2seq.tokenize import SideTokenizer, load_side_tokenizer

REQUIRED_FILES = (
    "config.yaml",
    "source_tokenizer.json",
    "target_tokenizer.json",
    "preprocessing.json",
    "model.safetensors",
    "model.json",
)
DECODE_BATCH = 64
LENGTH_MARGIN = 10


def settings_of(config: RunConfig) -> Seq2SeqConfig:
    return config.seq2seq or Seq2SeqConfig()


def pad_rows(rows: Sequence[Sequence[int]], device: torch.device | str = "cpu") -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out.to(device)


def encode_source(tokenizer: SideTokenizer, text: str, limit: int, where: str = "source") -> list[int]:
    """Source ids with </s>; DataError when longer than the model's limit."""
    ids = [*tokenizer.encode(text), EOS]
    if len(ids) > limit:
        raise DataError(
            f"{where}: {len(ids)} tokens, longer than this model's limit of {limit} (seq2seq.max_source_tokens); "
            "split the text into shorter sentences"
        )
    return ids


def where_of(data: pd.DataFrame | str | Path) -> str:
    """How an error names the rows it is about: the file, or "rows" for a frame."""
    return "rows" if isinstance(data, pd.DataFrame) else str(data)


def translate_ids(
    model: Seq2SeqTransformer,
    sources: Sequence[Sequence[int]],
    max_len: int,
    beam: int,
    alpha: float,
    batch_size: int = DECODE_BATCH,
    cache: bool = True,
    length_ratio: float | None = None,
) -> list[list[int]]:
    """Decoded target ids per source, in input order (batches of similar length to pad little).

    `length_ratio` (the run's longest target/source ratio in training) bounds each batch's decoding
    to ratio × its longest source + LENGTH_MARGIN tokens: an unsure model stops where no training
    translation would still go on, instead of at `max_len`."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    out: list[list[int]] = [[] for _ in sources]
    device = next(model.parameters()).device
    for begin in range(0, len(order), batch_size):
        picked = order[begin : begin + batch_size]
        batch = pad_rows([sources[i] for i in picked], device)
        steps = (
            max_len if length_ratio is None else min(max_len, math.ceil(length_ratio * batch.shape[1]) + LENGTH_MARGIN)
        )
        for index, ids in zip(picked, beam_search(model, batch, steps, beam, alpha, cache), strict=True):
            out[index] = ids
    return out


@dataclass
class Seq2SeqRun(RunDirectory):
    path: Path
    config: RunConfig
    model: Seq2SeqTransformer = field(repr=False)
    source_tokenizer: SideTokenizer = field(repr=False)
    target_tokenizer: SideTokenizer = field(repr=False)
    preprocessing: dict[str, Any]
    model_info: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.config.task)

    @property
    def source_name(self) -> str:
        return str(self.preprocessing["source"])

    @property
    def target_name(self) -> str:
        return str(self.preprocessing["target"])

    @property
    def headline(self) -> tuple[str, ...]:
        return ("bleu", "chrf", "cer", "wer", "exact_match")

    def translate(self, texts: Sequence[str], beam: int | None = None, max_new_tokens: int | None = None) -> list[str]:
        """Translations of `texts` (beam: the run's seq2seq.beam; 1 = greedy)."""
        settings = settings_of(self.config)
        sources = [
            encode_source(self.source_tokenizer, t, settings.max_source_tokens, f"row {i + 1}")
            for i, t in enumerate(texts)
        ]
        if not sources:
            return []
        max_len = min(max_new_tokens or settings.max_target_tokens, self.model.config.max_positions - 1)
        width = settings.beam if beam is None else beam
        ratio = self.preprocessing.get("length_ratio")
        ids = translate_ids(self.model, sources, max_len, width, settings.length_penalty, length_ratio=ratio)
        return [self.target_tokenizer.decode(row) for row in ids]

    def sources_of(self, frame: pd.DataFrame, where: str) -> list[str]:
        if self.source_name not in frame.columns:
            raise DataError(
                f"{where}: source column {self.source_name!r} missing"
                f"{did_you_mean(self.source_name, map(str, frame.columns))}; this run translates "
                f"{self.source_name} → {self.target_name} (columns: {', '.join(map(str, frame.columns))})"
            )
        return ["" if pd.isna(v) else str(v) for v in frame[self.source_name]]

    def predict(self, data: pd.DataFrame | str | Path) -> pd.DataFrame:
        """A `prediction` column: the translation of each row's source column."""
        frame = self._frame(data)
        return pd.DataFrame({"prediction": self.translate(self.sources_of(frame, where_of(data)))})

    def evaluate(self, data: pd.DataFrame | str | Path) -> dict[str, Any]:
        """BLEU, chrF, CER, WER and exact match on a table with the source and target columns."""
        from modelforge.seq2seq.metrics import translation_metrics

        frame = self._frame(data)
        where = where_of(data)
        sources = self.sources_of(frame, where)
        if self.target_name not in frame.columns:
            raise DataError(
                f"{where}: target column {self.target_name!r} missing (columns: {', '.join(frame.columns)})"
            )
        references = ["" if pd.isna(v) else str(v) for v in frame[self.target_name]]
        metrics = translation_metrics(self.translate(sources), references)
        return {"split": where, **metrics, "beam": settings_of(self.config).beam}

    def _frame(self, data: pd.DataFrame | str | Path) -> pd.DataFrame:
        """A table, or a text file named by the source side (test.de for a de → en run) with its
        line-aligned target file (test.en) beside it when there is one."""
        from modelforge.data.readers import read_data
        from modelforge.seq2seq.data import read_lines, read_parallel_files

        if isinstance(data, pd.DataFrame):
            return data
        path = Path(data)
        if path.suffix == f".{self.source_name}":
            target = path.with_suffix(f".{self.target_name}")
            if not target.is_file():
                return pd.DataFrame({self.source_name: read_lines(str(path))})
            pairs = read_parallel_files(ParallelFiles(source=str(path), target=str(target)))
            return pd.DataFrame({self.source_name: pairs.sources, self.target_name: pairs.targets})
        return read_data(data, self.config.data.bad_rows)


def load_seq2seq_run(path: str | Path) -> Seq2SeqRun:
    """Rebuild config, tokenizers and model from a seq2seq run directory."""
    from modelforge.compress.run_copy import load_run_weights

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: run directory not found")
    config, info = read_finished_run(path, REQUIRED_FILES)
    spec = Seq2SeqSpec(info["source_vocab"], info["target_vocab"])
    model = build_model(info["type"], spec, spec.target_vocab, info["options"])
    # a `modelforge compress` copy holds int8 weights, rebuilt into the model's quantized skeleton
    model = load_run_weights(model, path / "model.safetensors", info.get("quantization"))
    model.eval()
    preprocessing = json.loads((path / "preprocessing.json").read_text())
    return Seq2SeqRun(
        path,
        config,
        model,
        load_side_tokenizer(path / "source_tokenizer.json"),
        load_side_tokenizer(path / "target_tokenizer.json"),
        preprocessing,
        info,
    )
