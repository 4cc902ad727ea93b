"""`modelforge compress RUN --quantize int8-dynamic` on a seq2seq run: a new run directory whose Linear
layers (attention projections, feed-forward, output projection) hold int8 weights per output channel;
embeddings and norms stay float, activations are quantized on the fly. Scored on the same held-out
split as the original (eval.json), so `runs compare` shows what the int8 weights cost.

Pruning, fine-tuning and int8-static are refused in one line (not built for this task yet).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from torch import nn

from modelforge.errors import RunError
from modelforge.files import atomic_write_bytes, atomic_write_json
from modelforge.run import finish_run_directory, staged_run_directory

COPIED_FILES = ("config.yaml", "source_tokenizer.json", "target_tokenizer.json", "preprocessing.json")


def dynamic_int8_skeleton(model: nn.Module) -> nn.Module:
    from modelforge.compress.quantize import dynamic_int8

    return dynamic_int8(model)  # without example batches: Linear layers only, embeddings stay float


def compress_seq2seq(source: str | Path, out: str | Path, options: Any) -> Path:
    """Write the int8-dynamic copy of a seq2seq run to `out`; returns `out` (`compress` has checked the
    options against `Task.quantize_kinds`)."""
    from safetensors.torch import save

    from modelforge.compress.quantize import compact_state
    from modelforge.seq2seq.data import split_pairs
    from modelforge.seq2seq.metrics import translation_metrics
    from modelforge.seq2seq.run import load_seq2seq_run

    run = load_seq2seq_run(source)
    if run.model_info.get("quantization"):
        raise RunError(f"{source}: already quantized ({run.model_info['quantization']})")
    out = Path(out)
    quantized = dynamic_int8_skeleton(run.model)
    with staged_run_directory(out) as dest:
        for name in COPIED_FILES:
            shutil.copy2(run.path / name, dest / name)
        environment = json.loads((run.path / "environment.json").read_text())
        atomic_write_bytes(dest / "model.safetensors", save(compact_state(quantized)))
        info = {**run.model_info, "quantization": "int8-dynamic", "source": str(Path(source).resolve())}
        atomic_write_json(dest / "environment.json", environment)
        run.model = quantized  # type: ignore[assignment]
        _, valid, test = split_pairs(run.config.data, run.config.seed)
        scored, split = (test, "test") if test is not None else (valid, "valid")
        started = time.perf_counter()
        hypotheses = run.translate(scored.sources)
        evaluation = {"split": split, **translation_metrics(hypotheses, scored.targets)}
        evaluation["decode_seconds"] = round(time.perf_counter() - started, 3)
        evaluation["original_bleu"] = run.metrics.get("bleu")
        finish_run_directory(dest, evaluation, environment, info)
    return out


def load_int8_weights(float_model: nn.Module, weights_path: Path) -> nn.Module:
    """The int8-dynamic model of a compressed run, rebuilt from its compact safetensors file."""
    from modelforge.compress.quantize import load_quantized_weights

    return load_quantized_weights(dynamic_int8_skeleton(float_model), weights_path)
