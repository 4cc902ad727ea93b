"""`modelforge compress RUN --quantize int8-dynamic` on a seq2seq run: a new run directory whose Linear
layers (attention projections, feed-forward, output projection) hold int8 weights per output channel;
embeddings and norms stay float, activations are quantized on the fly. Scored on the same held-out
split as the original (eval.json), so `runs compare` shows what the int8 weights cost.

Pruning, fine-tuning and int8-static are refused in one line (not built for this task yet).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

COPIED_FILES = ("config.yaml", "source_tokenizer.json", "target_tokenizer.json", "preprocessing.json")


def compress_seq2seq(source: str | Path, out: str | Path, options: Any) -> Path:
    """Write the int8-dynamic copy of a seq2seq run to `out`; returns `out` (`compress` has checked the
    options against `Task.quantize_kinds`)."""
    from modelforge.compress.quantize import dynamic_int8
    from modelforge.compress.run_copy import refuse_quantized, write_quantized_copy
    from modelforge.seq2seq.data import split_pairs
    from modelforge.seq2seq.metrics import translation_metrics
    from modelforge.seq2seq.run import load_seq2seq_run

    run = load_seq2seq_run(source)
    refuse_quantized(run, source)
    _, valid, test = split_pairs(run.config.data, run.config.seed)
    scored, split = (test, "test") if test is not None else (valid, "valid")

    def score(quantized: nn.Module) -> dict[str, Any]:
        run.model = quantized  # type: ignore[assignment]
        started = time.perf_counter()
        hypotheses = run.translate(scored.sources)
        return {
            "split": split,
            **translation_metrics(hypotheses, scored.targets),
            "decode_seconds": round(time.perf_counter() - started, 3),
            "original_bleu": run.metrics.get("bleu"),
        }

    # without example batches: Linear layers only, embeddings stay float
    quantized = dynamic_int8(run.model)
    return write_quantized_copy(run, source, out, COPIED_FILES, quantized, {"quantization": "int8-dynamic"}, score)
