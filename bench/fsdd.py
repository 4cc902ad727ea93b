"""Spoken-digit benchmark on the Free Spoken Digit Dataset (five speakers).

Prints the accuracy on the dataset's own test split (recordings 0–4 of every speaker) and the
speaker-independent accuracy (train on four speakers, test on the fifth, each in turn).

With `--synthetic`, the training rows of every protocol also get the ten digit words spoken by
Debian's espeak-ng in many synthetic voices (accents × voice variants × pitches × speeds),
rendered once into a cache folder at 8 kHz with the silence trimmed: more speakers to learn
from, none of them the held-out one. The test rows stay real recordings only.

    .venv/bin/python bench/fsdd.py                      # audio_cnn, both protocols
    .venv/bin/python bench/fsdd.py --model audio_transformer --only own
    .venv/bin/python bench/fsdd.py --only speakers --jobs 2 --set train.threads=1
    .venv/bin/python bench/fsdd.py --only speakers --synthetic   # needs espeak-ng (apt-get install espeak-ng)
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import shutil
import subprocess
import tempfile
import time
import wave
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from _machine import auto_line, print_header

import modelforge
from modelforge.config import load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fsdd.yaml"
FSDD = ROOT.parent / "shared" / "datasets" / "fsdd"


WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"]
PITCHES, SPEEDS = [30, 70], [140, 190]
CACHE = Path.home() / ".cache" / "modelforge" / "fsdd-espeak"


def trimmed(samples: np.ndarray, rate: int) -> np.ndarray:
    """The clip between the first and last 10 ms frame within 40 dB of its loudest (as FSDD is cut)."""
    frame = rate // 100
    energy = np.array([np.sqrt(np.mean(samples[i : i + frame] ** 2)) for i in range(0, len(samples) - frame, frame)])
    loud = np.flatnonzero(energy > energy.max() * 0.01)
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


def synthetic_voices() -> pd.DataFrame:
    """path,label,speaker,index,split rows for espeak-ng renderings of the digit words (cached)."""
    from modelforge.data.audio import read_wav, resample

    if shutil.which("espeak-ng") is None:
        raise SystemExit("--synthetic needs espeak-ng: apt-get install espeak-ng")
    CACHE.mkdir(parents=True, exist_ok=True)
    rows = []
    for accent, variant, pitch, speed in itertools.product(ACCENTS, VARIANTS, PITCHES, SPEEDS):
        voice = f"{accent}+{variant}"
        for label, word in enumerate(WORDS):
            path = CACHE / f"{label}_{voice}_p{pitch}_s{speed}.wav"
            if not path.exists():
                raw = path.with_suffix(".raw.wav")
                subprocess.run(
                    ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(raw), word], check=True
                )
                samples, rate = read_wav(raw)
                clip = resample(trimmed(samples, rate), rate, 8000)
                pcm = (np.clip(clip / max(np.abs(clip).max(), 1e-8), -1, 1) * 32000).astype("<i2")
                with wave.open(str(path), "wb") as out:
                    out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
                    out.writeframes(pcm.tobytes())
                raw.unlink()
            rows.append({"path": str(path), "label": label, "speaker": f"espeak-{voice}", "index": 0, "split": "train"})
    return pd.DataFrame(rows)


def train_and_test(files: Path, overrides: list[str], out: Path) -> float:
    config = load_config(EXAMPLE, [f"data.train={files}", *overrides])
    run = modelforge.train(config, out)
    return float(run.metrics["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="audio_cnn", help="audio_cnn or audio_transformer")
    parser.add_argument("--only", choices=["own", "speakers"], help="run one protocol only")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override")
    parser.add_argument("--synthetic", action="store_true", help="add espeak-ng voices to the training rows")
    parser.add_argument("--jobs", type=int, default=1, help="speaker folds trained at once (one process each)")
    args = parser.parse_args()
    print_header()
    overrides = [f"model.type={args.model}", *args.overrides]
    if args.model != "audio_cnn":
        overrides.append("model.channels=null")
    frame = pd.read_csv(FSDD / "files.csv")
    frame["path"] = [str(FSDD / p) for p in frame["path"]]
    extra = synthetic_voices() if args.synthetic else frame.iloc[:0]
    if args.synthetic:
        print(f"synthetic training rows: {len(extra)} ({extra['speaker'].nunique()} espeak-ng voices)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "own"):
            started = time.time()
            files = work / "own.csv"
            pd.concat([frame, extra]).to_csv(files, index=False)  # real rows first: they set the sample rate
            accuracy = train_and_test(files, overrides, work / "own")
            seconds = time.time() - started
            print(f"own split   {args.model}: test accuracy {accuracy:.4f}  ({seconds:.0f} s)", flush=True)
            print(f"own split   {auto_line(work / 'own')}", flush=True)
        if args.only in (None, "speakers"):
            folds = {}
            for speaker in sorted(frame["speaker"].unique()):
                fold = frame.assign(split=["test" if s == speaker else "train" for s in frame["speaker"]])
                folds[speaker] = work / f"without-{speaker}.csv"
                pd.concat([fold, extra]).to_csv(folds[speaker], index=False)
            started = time.time()
            scores = {}
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
                running = {
                    pool.submit(train_and_test, files, overrides, work / f"fold-{speaker}"): speaker
                    for speaker, files in folds.items()
                }
                for done in as_completed(running):
                    speaker = running[done]
                    scores[speaker] = done.result()
                    seconds = time.time() - started
                    print(f"held-out {speaker:<10} accuracy {scores[speaker]:.4f}  (at {seconds:.0f} s)", flush=True)
                    print(f"held-out {speaker:<10} {auto_line(work / f'fold-{speaker}')}", flush=True)
            mean = sum(scores.values()) / len(scores)
            print(f"speaker-independent {args.model}: mean accuracy {mean:.4f} over {len(scores)} speakers")


if __name__ == "__main__":
    main()
