"""Word and character error rates of transcripts (jiwer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def speech_metrics(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """wer and cer (0–1, edits over reference words / characters, corpus-level) and n."""
    import jiwer

    # jiwer refuses an empty hypothesis list entry: a silent answer is one wrong "word"
    hyps = [h if h.strip() else "\u2205" for h in hypotheses]
    refs = list(references)
    return {
        "wer": float(jiwer.wer(refs, hyps)) if refs else float("nan"),
        "cer": float(jiwer.cer(refs, hyps)) if refs else float("nan"),
        "n": len(refs),
    }
