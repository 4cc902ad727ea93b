"""Audio robustness on the Free Spoken Digit Dataset (five speakers): accuracy under recording shifts.

Trains `examples/fsdd.yaml` (or, `--config init`, what `modelforge init` writes for each training
table; plus any `--set` overrides) and reports, on the held-out clips, the
accuracy on the clean clips and under each shift `evaluate --perturb` knows (0.3 s of silence at
each end, ±10 dB gain, speed 0.9 / 1.1, white noise at 20 and 10 dB SNR):

- own split: trained on the five speakers' training rows, tested on their `split: test` rows;
- speakers held out: trained on four speakers, tested on all 500 clips of the fifth, each in turn,
  and the mean over the five (leave one speaker out).

`--front-end legacy` trains with the front end before this one (no silence trimming, peak gain,
clips padded or cut to one duration, no waveform augmentation) for the side-by-side figures.

    .venv/bin/python bench/audio_robustness.py                                  # both protocols
    .venv/bin/python bench/audio_robustness.py --only own --front-end legacy
    .venv/bin/python bench/audio_robustness.py --epochs 12 --set model.convs_per_block=1 --jobs 2
    .venv/bin/python bench/audio_robustness.py --only speakers --feature floor_db=50   # an audio feature option
    .venv/bin/python bench/audio_robustness.py --only speakers --config init --jobs 2  # as a stranger starts
    .venv/bin/python bench/audio_robustness.py --only speakers --config init --jobs 2 --voices 160  # + espeak-ng

`--voices N` adds each digit spoken by N synthetic voices (Debian's espeak-ng, bench/_voices.py) to every
training table; the held-out speaker's clips stay real recordings.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from _machine import auto_line, print_header

import modelforge
from modelforge.config import RunConfig, load_config
from modelforge.evaluate.robustness import perturbed_metrics

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fsdd.yaml"
FSDD = ROOT.parent / "shared" / "datasets" / "fsdd"
SHIFTS = "silence,gain,speed,noise"
SYNTHETIC_RATE = 8000  # FSDD's
LEGACY = {"trim_db": None, "gain": "peak", "length": "pad", "augment": {"copies": 0}}  # the audio feature's keys


def init_config(files: Path) -> Path:
    """What `modelforge init TABLE --target label` writes for the rows of `files` not marked test (a
    path,label table beside it), as a stranger would start: the config file's path."""
    from modelforge.init import starter_config_yaml

    frame = pd.read_csv(files)
    table = files.with_name(files.stem + "-init.csv")
    frame.loc[frame["split"] != "test", ["path", "label"]].to_csv(table, index=False)
    config = table.with_suffix(".yaml")
    config.write_text(starter_config_yaml(table, "label", None, config))
    return config


def bench_config(files: Path, overrides: list[str], feature_options: dict[str, Any], start: str) -> RunConfig:
    """The example (or init's config, `start`) with `--set` overrides, its audio feature's options (and
    `augment`'s) updated."""
    if start == "init":
        config = load_config(init_config(files), overrides)
    else:
        config = load_config(EXAMPLE, [f"data.train={files}", *overrides])
    if not feature_options:
        return config
    raw = config.model_dump()
    feature = raw["features"][0]
    augment = {**feature["augment"], **feature_options.get("augment", {})}
    raw["features"][0] = {**feature, **feature_options, "augment": augment}
    return RunConfig.model_validate(raw)


def train_and_probe(
    files: Path, overrides: list[str], feature_options: dict[str, Any], start: str, out: Path
) -> dict[str, Any]:
    """Train on the rows of `files` not marked test; the accuracy on the test rows, clean and shifted."""
    config = bench_config(files, overrides, feature_options, start)
    started = time.time()
    run = modelforge.train(config, out, show_progress=False)
    trained = time.time() - started
    frame = pd.read_csv(files)
    shifted = perturbed_metrics(run, frame[frame["split"] == "test"], SHIFTS, "accuracy")
    return {**shifted, "seconds": trained, "auto": auto_line(run.path)}


def synthetic_clips(count: int, folder: Path) -> pd.DataFrame:
    """Each digit spoken by `count` espeak-ng voices, as WAVs in `folder`: training rows of files.csv's shape."""
    from _voices import WORDS, speak, voices, write_pcm

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for voice in voices(count):
        for digit in range(len(WORDS)):
            path = folder / f"{digit}_{voice.name}.wav"
            write_pcm(str(path), speak(voice, digit, SYNTHETIC_RATE), SYNTHETIC_RATE)
            rows.append({"path": str(path), "label": digit, "speaker": f"espeak {voice.name}", "split": "train"})
    print(f"synthetic voices: {count} (espeak-ng), {len(rows)} clips added to every training table", flush=True)
    return pd.DataFrame(rows)


def row(name: str, result: dict[str, Any]) -> str:
    shifts = "  ".join(f"{k} {v:.3f}" for k, v in result.items() if k not in ("metric", "seconds", "auto"))
    line = f"{name:<18} {shifts}  ({result['seconds']:.0f} s training)"
    return f"{line}\n{'':<18} {result['auto']}" if "auto" in result else line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["own", "speakers"], help="run one protocol only")
    parser.add_argument("--epochs", type=int, help="train.epochs (default: the example's)")
    parser.add_argument("--front-end", choices=["robust", "legacy"], default="robust")
    parser.add_argument(
        "--config",
        choices=["example", "init"],
        default="example",
        help="train examples/fsdd.yaml, or what `modelforge init` writes for each training table (path,label)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override")
    parser.add_argument("--jobs", type=int, default=1, help="speaker folds trained at once (one process each)")
    parser.add_argument(
        "--feature", action="append", default=[], metavar="KEY=VALUE", help="audio feature option, e.g. floor_db=50"
    )
    parser.add_argument(
        "--voices",
        type=int,
        default=0,
        help="add each digit spoken by this many synthetic voices (espeak-ng, up to 160) to every training table",
    )
    parser.add_argument("--keep", type=Path, help="folder to keep the trained runs in (default: a temporary one)")
    args = parser.parse_args()
    overrides = list(args.overrides)
    feature_options = dict(LEGACY) if args.front_end == "legacy" else {}
    feature_options.update({k: yaml.safe_load(v) for k, v in (option.split("=", 1) for option in args.feature)})
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    print_header()
    print(
        f"config: {args.config}; front end: {args.front_end}; "
        f"overrides: {' '.join(overrides + args.feature) or 'none'}",
        flush=True,
    )
    frame = pd.read_csv(FSDD / "files.csv")
    frame["path"] = [str(FSDD / p) for p in frame["path"]]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        extra = synthetic_clips(args.voices, work / "voices") if args.voices else frame.iloc[:0]
        if args.only in (None, "own"):
            files = work / "own.csv"
            pd.concat([frame, extra]).to_csv(files, index=False)
            print(
                row("own split", train_and_probe(files, overrides, feature_options, args.config, work / "own")),
                flush=True,
            )
        if args.only in (None, "speakers"):
            folds = {}
            for speaker in sorted(frame["speaker"].unique()):
                folds[speaker] = work / f"without-{speaker}.csv"
                held_out = frame.assign(split=["test" if s == speaker else "train" for s in frame["speaker"]])
                pd.concat([held_out, extra]).to_csv(folds[speaker], index=False)
            results = {}
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
                running = {
                    pool.submit(
                        train_and_probe, files, overrides, feature_options, args.config, work / f"fold-{speaker}"
                    ): speaker
                    for speaker, files in folds.items()
                }
                for done in as_completed(running):
                    results[running[done]] = done.result()
                    print(row(f"held-out {running[done]}", results[running[done]]), flush=True)
            keys = [k for k in next(iter(results.values())) if k not in ("metric", "seconds", "auto")]
            means = {k: sum(r[k] for r in results.values()) / len(results) for k in keys}
            print(row("speakers mean", {**means, "seconds": sum(r["seconds"] for r in results.values())}))


if __name__ == "__main__":
    main()
