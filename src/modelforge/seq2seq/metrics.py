"""Scores of translations against references: sacreBLEU's BLEU and chrF (with their signatures), CER/WER
(jiwer), exact match, and BLEU by source length.

For grapheme-to-phoneme, where targets are space-separated phonemes, `wer` is the phoneme error rate
(each phoneme a "word") and `sequence_error_rate` is the field's word error rate (share of words with
any wrong phoneme).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LENGTH_BUCKETS = ((1, 10), (11, 20), (21, 30), (31, 10**9))


def translation_metrics(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """bleu, chrf (0–100, sacreBLEU defaults: 13a tokenization, exp smoothing), their signatures,
    cer, wer, exact_match and sequence_error_rate (0–1), and n."""
    import jiwer
    from sacrebleu.metrics import BLEU, CHRF

    hypotheses, references = list(hypotheses), list(references)
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    exact = sum(h == r for h, r in zip(hypotheses, references, strict=True)) / max(1, len(references))
    # jiwer refuses empty references; such pairs cannot be scored by CER/WER (read_pairs refuses them anyway)
    kept = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r.strip()]
    refs, hyps = [r for r, _ in kept], [h if h.strip() else "\u2205" for _, h in kept]
    return {
        "bleu": float(bleu_score.score),
        "chrf": float(chrf_score.score),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "cer": float(jiwer.cer(refs, hyps)) if refs else float("nan"),
        "wer": float(jiwer.wer(refs, hyps)) if refs else float("nan"),
        "exact_match": exact,
        "sequence_error_rate": 1.0 - exact,
        "n": len(references),
    }


def bleu_by_length(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str]) -> list[dict]:
    """Corpus BLEU per bucket of source length in whitespace words (1-10, 11-20, 21-30, 31+)."""
    from sacrebleu.metrics import BLEU

    rows = []
    for low, high in LENGTH_BUCKETS:
        picked = [i for i, s in enumerate(sources) if low <= len(s.split()) <= high]
        if not picked:
            continue
        score = BLEU().corpus_score([hypotheses[i] for i in picked], [[references[i] for i in picked]])
        label = f"{low}-{high}" if high < 10**9 else f"{low}+"
        rows.append({"source_words": label, "n": len(picked), "bleu": float(score.score)})
    return rows
