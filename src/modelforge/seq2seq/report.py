"""`modelforge report` on a seq2seq run: headline scores, learning curves, sample translations beside
their references, BLEU by source length, and the model card.

The pairs are the run's held-out split (test, else valid), re-read and re-split as training did, or
`--data` (a table with the source and target columns); at most REPORT_ROWS of them are decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelforge.errors import DataError
from modelforge.evaluate.report import (
    Section,
    _read_json,
    curves_section,
    epoch_fields,
    model_card_section,
    note,
    page_heading,
    render_page,
    summary_section,
    table,
    training_files,
)
from modelforge.files import read_jsonl
from modelforge.seq2seq.data import Pairs, read_pairs, split_pairs
from modelforge.seq2seq.metrics import bleu_by_length, translation_metrics
from modelforge.seq2seq.run import Seq2SeqRun, load_seq2seq_run

REPORT_ROWS = 500
SAMPLES = 25


def held_out_pairs(run: Seq2SeqRun, data: str | Path | None) -> tuple[Pairs, str]:
    """`--data`, else the run's test split (else its validation split), with where they came from."""
    if data is not None:
        config = run.config.data.model_copy(update={"target": run.target_name, "source": run.source_name})
        return read_pairs(str(data), config), str(data)
    _, valid, test = split_pairs(run.config.data, run.config.seed)
    return (test, "test split") if test is not None else (valid, "validation split")


def seq2seq_report(run_dir: Path, data: str | Path | None = None, slice_by: Sequence[str] = (), **_: Any) -> str:
    if slice_by:
        raise DataError(f"{run_dir}: --slice-by applies to classification and regression runs")
    run = load_seq2seq_run(run_dir)
    config = run.config
    pairs, source = held_out_pairs(run, data)
    pairs = pairs.take(np.arange(min(len(pairs), REPORT_ROWS)))
    hypotheses = run.translate(pairs.sources)
    scored = translation_metrics(hypotheses, pairs.targets)
    metrics = _read_json(run_dir / "eval.json")
    sections = [
        summary_section(run_dir, config, metrics, None, run.headline),
        curves_section(read_jsonl(run_dir / "metrics.jsonl")),
    ]
    samples = [
        {"source": s, "reference": r, "translation": h, "exact": h == r}
        for s, r, h in list(zip(pairs.sources, pairs.targets, hypotheses, strict=True))[:SAMPLES]
    ]
    body = note(
        f"the first {len(samples)} of {len(pairs)} pairs of the {source} ({run.source_name} → {run.target_name}), "
        f"beam {run.config.seq2seq.beam if run.config.seq2seq else 5}; on these {len(pairs)}: BLEU "
        f"{scored['bleu']:.2f}, chrF {scored['chrf']:.2f} ({scored['bleu_signature']})"
    )
    sections.append(Section("samples", "Sample translations", body + table(samples, flag=None)))
    buckets = bleu_by_length(pairs.sources, hypotheses, pairs.targets)
    sections.append(
        Section("lengths", "BLEU by source length", table(buckets) + note("source length in whitespace words"))
    )
    model_info = _read_json(run_dir / "model.json")
    fields = training_files(config) | {
        "tokenizers": f"{run.source_tokenizer.name} ({run.source_tokenizer.vocab_size}) → "
        f"{run.target_tokenizer.name} ({run.target_tokenizer.vocab_size})"
    }
    sections.append(model_card_section(run_dir, config, model_info, metrics, [], fields, epoch_fields(config, metrics)))
    return render_page(*page_heading(run_dir, config), sections)
