"""`modelforge explain` on a seq2seq run: cross-attention maps, which source tokens each output token read.

For each chosen row of `--data` (a table with the run's source column) the source is translated, then
the decoder is run once more over its own output to read the cross-attention of every layer, averaged
over heads. Written to the folder: attributions.json (per row the source and target tokens, the map of
the last layer and the mean over layers) and index.html (one heat-map table per row). `--method` is
"attention" (the only one; the default "ig" of the verb is read as it).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import torch

from modelforge.errors import DataError
from modelforge.files import atomic_write_json, atomic_write_text
from modelforge.models.seq2seq import BOS, EOS
from modelforge.seq2seq.run import encode_source, load_seq2seq_run, pad_rows, settings_of, translate_ids

METHODS = ("attention", "ig")  # the verb's default "ig" reads as attention here


def pieces(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each id as the text it decodes to (a subword, a character, a phoneme)."""
    return [tokenizer.decode([i]) if i > EOS else ("</s>" if i == EOS else "<s>") for i in ids]


def explain_translations(
    run_dir: str | Path, data: str | Path, rows: list[int], method: str, out: str | Path | None, **_: Any
) -> tuple[Path, list[dict[str, Any]], list[str]]:
    """Explain rows of `data`; write the folder; return it, the explanations and printable lines."""
    from modelforge.data.readers import read_data

    if method not in METHODS:
        raise DataError(f"--method: seq2seq runs are explained by their cross-attention (attention), got {method!r}")
    run = load_seq2seq_run(run_dir)
    frame = read_data(data, run.config.data.bad_rows)
    sources = run.sources_of(frame, str(data))
    missing = [r for r in rows if not 0 <= r < len(sources)]
    if missing:
        raise DataError(f"--rows: {data} has {len(sources)} rows (0 to {len(sources) - 1}), got {missing[0]}")
    settings = settings_of(run.config)
    explanations, lines = [], []
    for row in rows:
        source_ids = encode_source(run.source_tokenizer, sources[row], settings.max_source_tokens, f"row {row}")
        (target_ids,) = translate_ids(
            run.model, [source_ids], settings.max_target_tokens, settings.beam, settings.length_penalty,
            length_ratio=run.preprocessing.get("length_ratio"),
        )  # fmt: skip
        target_in = [BOS, *target_ids]
        maps = run.model.cross_attention_weights(pad_rows([source_ids]), torch.tensor([target_in]))
        per_layer = maps[:, 0].mean(dim=1)  # layers × T × S, averaged over heads
        source_tokens = pieces(run.source_tokenizer, source_ids)
        target_tokens = pieces(run.target_tokenizer, [*target_ids, EOS])
        last, mean = per_layer[-1], per_layer.mean(dim=0)
        explanations.append(
            {
                "row": row,
                "source": sources[row],
                "translation": run.target_tokenizer.decode(target_ids),
                "source_tokens": source_tokens,
                "target_tokens": target_tokens,
                "last_layer": [[round(float(v), 4) for v in r] for r in last],
                "mean_over_layers": [[round(float(v), 4) for v in r] for r in mean],
            }
        )
        aligned = ", ".join(f"{t!r}←{source_tokens[int(mean[i].argmax())]!r}" for i, t in enumerate(target_tokens[:8]))
        lines.append(f"row {row}: {sources[row]!r} → {explanations[-1]['translation']!r}; most attended: {aligned}")
    folder = Path(out) if out is not None else Path(run_dir) / "explain"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "attributions.json", {"method": "cross-attention", "rows": explanations})
    atomic_write_text(folder / "index.html", attention_page(explanations))
    return folder, explanations, lines


def attention_page(explanations: list[dict[str, Any]]) -> str:
    """One heat-map table per row: target tokens down, source tokens across, mean over layers."""
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>cross-attention</title>"]
    parts.append("<style>td,th{padding:2px 5px;font:12px monospace;border:1px solid #eee}</style></head><body>")
    for item in explanations:
        head = "".join(f"<th>{html.escape(t)}</th>" for t in item["source_tokens"])
        body = []
        for token, weights in zip(item["target_tokens"], item["mean_over_layers"], strict=True):
            cells = "".join(f"<td style='background:rgba(29,78,216,{w:.3f})' title='{w:.3f}'></td>" for w in weights)
            body.append(f"<tr><th>{html.escape(token)}</th>{cells}</tr>")
        parts.append(
            f"<h2>row {item['row']}</h2><p>{html.escape(item['source'])} → {html.escape(item['translation'])}</p>"
            f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>"
        )
    parts.append("</body></html>\n")
    return "".join(parts)
