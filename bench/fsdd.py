"""Spoken-digit benchmark on the Free Spoken Digit Dataset (five speakers).

Prints the accuracy on the dataset's own test split (recordings 0–4 of every speaker) and the
speaker-independent accuracy (train on four speakers, test on the fifth, each in turn).

    .venv/bin/python bench/fsdd.py                      # audio_cnn, both protocols
    .venv/bin/python bench/fsdd.py --model audio_transformer --only own
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

import modelforge
from modelforge.config import load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fsdd.yaml"
FSDD = ROOT.parent / "shared" / "datasets" / "fsdd"


def train_and_test(files: Path, overrides: list[str], out: Path) -> float:
    config = load_config(EXAMPLE, [f"data.train={files}", *overrides])
    run = modelforge.train(config, out)
    return float(run.metrics["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="audio_cnn", help="audio_cnn or audio_transformer")
    parser.add_argument("--only", choices=["own", "speakers"], help="run one protocol only")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override")
    args = parser.parse_args()
    overrides = [f"model.type={args.model}", *args.overrides]
    if args.model != "audio_cnn":
        overrides.append("model.channels=null")
    frame = pd.read_csv(FSDD / "files.csv")
    frame["path"] = [str(FSDD / p) for p in frame["path"]]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "own"):
            started = time.time()
            files = work / "own.csv"
            frame.to_csv(files, index=False)
            accuracy = train_and_test(files, overrides, work / "own")
            seconds = time.time() - started
            print(f"own split   {args.model}: test accuracy {accuracy:.4f}  ({seconds:.0f} s)", flush=True)
        if args.only in (None, "speakers"):
            scores = {}
            for speaker in sorted(frame["speaker"].unique()):
                started = time.time()
                fold = frame.assign(split=["test" if s == speaker else "train" for s in frame["speaker"]])
                files = work / f"without-{speaker}.csv"
                fold.to_csv(files, index=False)
                scores[speaker] = train_and_test(files, overrides, work / f"fold-{speaker}")
                seconds = time.time() - started
                print(f"held-out {speaker:<10} accuracy {scores[speaker]:.4f}  ({seconds:.0f} s)", flush=True)
            mean = sum(scores.values()) / len(scores)
            print(f"speaker-independent {args.model}: mean accuracy {mean:.4f} over {len(scores)} speakers")


if __name__ == "__main__":
    main()
