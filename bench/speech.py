"""Connected-digit speech recognition (task: speech-recognition) on FSDD, each figure against its floor.

Utterances are built from the Free Spoken Digit Dataset's recordings (8 kHz, five speakers): 3–7 digits
of ONE speaker, joined by gaps of 50–300 ms of seeded Gaussian noise at −45 dBFS (one such gap also
leads and trails), transcribed as the digit words ("three one four"): WER counts digit words, CER
characters. Training utterances use recordings 5–49 of each digit and speaker, test utterances
recordings 0–4 (FSDD's own test rule), so no recording is heard in both. The WAVs and their tables
(audio,text,speaker) are written to WORK/clips/{train,test}.csv.

  own   `modelforge init train.csv --target text`'s config, unchanged (it takes test.csv beside
        train.csv as data.test and 10 % of train.csv as the validation split), trained on all five
        speakers' training utterances (default 2,000), scored on 500 test utterances of the same
        speakers (greedy, the run's speech.beam). Floor: WER ≤ 5 %.
  loso  leave one speaker out: init's config for the other four speakers' training utterances, scored
        on the left-out speaker's test utterances; each fold and the mean. Floor: mean WER ≤ 15 %.
  rtf   after training (own's run, else the first fold's): seconds of decoding (model forward at each of the
        run's speech.warps + CTC decoding with its speech.beam, from log-mel features) per second of test
        audio, all test clips in one batch and one clip at a time, with 1 torch thread and 2; best of 2 (of
        1 when the first took over a quarter of --decode-budget; a setting still decoding after
        --decode-budget, 120 s, is scored on the clips it finished, in table order). Floor: ≤ 0.05.
        Feature extraction (WAV → log-mel) is printed beside it, outside the floor.
  rescore  `--work WORK` of an earlier loso run: each fold's kept run scored again on its test utterances
        with `--set` decoding overrides (speech.warps, speech.beam), beside what it scored when trained.

`--scale small` (300 utterances, 100 test, epochs capped at 3) proves the pipeline in minutes; `--scale
full` is the measured run. Data: ../shared/datasets/fsdd beside the repo, else `modelforge datasets
fetch fsdd` (dataset:fsdd), or `--fsdd FOLDER` holding recordings/<digit>_<speaker>_<index>.wav.

    .venv/bin/python bench/speech.py all --scale small
    .venv/bin/python bench/speech.py own --scale full --threads 1 --work /tmp/speech-own
    .venv/bin/python bench/speech.py loso --scale full --threads 1 --jobs 2 --set speech.beam=8
    .venv/bin/python bench/speech.py loso --scale full --threads 1 --jobs 2 --voices 160
    .venv/bin/python bench/speech.py rescore --work /tmp/speech-loso --set 'speech.warps=[1.0]'

`--voices N` adds training utterances (half as many as the recordings', `--voice-utterances`) whose digits
N synthetic voices speak (Debian's espeak-ng, bench/_voices.py; the issue allows such voices for a small
vocabulary): they train in every fold and are never held out or tested.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
import wave
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from _machine import auto_line, print_header
from _voices import WORDS, speak, voices, write_pcm

import modelforge
from modelforge.config import load_config

ROOT = Path(__file__).resolve().parents[1]
if (ROOT.parent / "shared" / "datasets").is_dir():
    os.environ.setdefault("MODELFORGE_DATA", str(ROOT.parent / "shared" / "datasets"))

RATE = 8000
TEST_INDEX = 5  # FSDD's own rule: recordings 0–4 of each digit and speaker are test
DIGITS = (3, 7)  # digits per utterance, inclusive
GAP_SECONDS = (0.05, 0.30)
NOISE_DBFS = -45.0  # RMS of the gap noise against a full-scale 1.0
FLOORS = {"own": 0.05, "loso": 0.15, "rtf": 0.05}
# a setting stops decoding after --decode-budget seconds and is scored on the clips it finished: with 2
# threads on a busy 2-core machine the GRU's per-step thread barriers can cost seconds per clip
DECODE_BUDGET_SECONDS = 120.0
SCALES = {"small": {"utterances": 300, "test": 100, "max_epochs": 3}, "full": {"utterances": 2000, "test": 500}}

Pool = dict[tuple[str, int, bool], list[np.ndarray]]  # (speaker, digit, held out) → recordings


# ----------------------------------------------------------------------------- utterances
def fsdd_folder(given: Path | None) -> Path:
    """--fsdd, else the catalog's fsdd folder (../shared/datasets beside the repo when present)."""
    if given is not None:
        return given
    from modelforge.datasets.catalog import resolve_dataset_path
    from modelforge.errors import ModelforgeError

    try:
        return resolve_dataset_path("dataset:fsdd")
    except ModelforgeError as exc:
        raise SystemExit(str(exc)) from None


def read_recordings(folder: Path) -> Pool:
    """Every recordings/<digit>_<speaker>_<index>.wav at 8 kHz, keyed by speaker, digit and test (index < 5)."""
    from modelforge.data.audio import read_wav, resample

    pool: Pool = defaultdict(list)
    for path in sorted((folder / "recordings").glob("*.wav")):
        digit, speaker, index = path.stem.split("_")
        samples, rate = read_wav(path)
        pool[(speaker, int(digit), int(index) < TEST_INDEX)].append(resample(samples, rate, RATE))
    if not pool:
        raise SystemExit(f"{folder / 'recordings'}: no <digit>_<speaker>_<index>.wav recordings")
    return pool


def utterance(pool: Pool, speaker: str, held_out: bool, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One speaker's 3–7 random digits between noise gaps, and its transcript in digit words."""
    digits = rng.integers(0, 10, size=int(rng.integers(DIGITS[0], DIGITS[1] + 1))).tolist()
    noise = 10 ** (NOISE_DBFS / 20)

    def gap() -> np.ndarray:
        return rng.normal(0.0, noise, int(RATE * rng.uniform(*GAP_SECONDS))).astype(np.float32)

    pieces = [gap()]
    for digit in digits:
        recordings = pool[(speaker, digit, held_out)]
        pieces += [recordings[int(rng.integers(len(recordings)))], gap()]
    return np.concatenate(pieces), " ".join(WORDS[d] for d in digits)


def write_utterances(
    pool: Pool, count: int, held_out: bool, clips: Path, seed: int, prefix: str = "", before: pd.DataFrame | None = None
) -> pd.DataFrame:
    """`count` utterances, the speakers taking turns, as clips/{train,test}/{prefix}NNNNN.wav, listed after
    `before`'s rows in clips/{train,test}.csv; all the rows."""
    split = "test" if held_out else "train"
    speakers = sorted({speaker for speaker, _, _ in pool})
    rng = np.random.default_rng(seed)
    (clips / split).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        speaker = speakers[i % len(speakers)]
        samples, text = utterance(pool, speaker, held_out, rng)
        name = f"{split}/{prefix}{i:05d}.wav"
        write_pcm(str(clips / name), samples, RATE)
        rows.append({"audio": name, "text": text, "speaker": speaker, "seconds": len(samples) / RATE})
    frame = pd.concat([before, pd.DataFrame(rows)], ignore_index=True) if before is not None else pd.DataFrame(rows)
    frame[["audio", "text", "speaker"]].to_csv(clips / f"{split}.csv", index=False)
    return frame


def synthetic_pool(count: int) -> Pool:
    """Each digit spoken once by each of `count` espeak-ng voices (bench/_voices.py), as training recordings."""
    return {
        (f"espeak {voice.name}", digit, False): [speak(voice, digit, RATE)]
        for voice in voices(count)
        for digit in range(len(WORDS))
    }


def fold_tables(clips: Path, folder: Path, speaker: str) -> Path:
    """folder/train.csv (the other speakers' training utterances) and folder/test.csv (the speaker's)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, keep in (("train", False), ("test", True)):
        frame = pd.read_csv(clips / f"{split}.csv")
        frame = frame[(frame["speaker"] == speaker) == keep]
        frame = frame.assign(audio=[os.path.relpath(clips / a, folder) for a in frame["audio"]])
        frame.to_csv(folder / f"{split}.csv", index=False)
    return folder / "train.csv"


# ----------------------------------------------------------------------------- train and score
def init_and_train(
    train_csv: Path, run_dir: Path, threads: int, max_epochs: int | None, extra: list[str]
) -> tuple[Any, float]:
    """Train with `modelforge init TRAIN --target text`'s config (threads set; epochs capped at small
    scale; `extra` overrides, `--set`'s); the run and the training minutes."""
    from modelforge.init import starter_config_yaml

    config_path = train_csv.with_name("speech.yaml")
    config_path.write_text(starter_config_yaml(train_csv, "text", None, config_path))
    raw = yaml.safe_load(config_path.read_text())
    assert raw["task"] == "speech-recognition", f"init inferred task {raw['task']!r}"
    overrides = [f"train.threads={threads}"]
    if max_epochs is not None:
        overrides.append(f"train.epochs={min(max_epochs, raw['train']['epochs'])}")
    config = load_config(config_path, [*overrides, *extra])
    started = time.time()
    run = modelforge.train(config, run_dir)
    return run, (time.time() - started) / 60


def trained_line(run: Any, minutes: float, init_epochs: int) -> str:
    m, model = run.metrics, run.model_info
    return (
        f"trained {minutes:.1f} min ({m['epochs']} of init's {init_epochs} epochs, best epoch {m['best_epoch']}, "
        f"{m['steps']} steps, {m['train_clips']} training clips, {model['type']} width "
        f"{model['options'].get('width')} layers {model['options'].get('layers')}, {model['parameters']:,} parameters; "
        f"load {os.getloadavg()[0]:.2f})"
    )


def floor_text(value: float, floor: float, unit: str = "%") -> str:
    shown = f"{floor:.0%}" if unit == "%" else f"{floor:g}"
    return f"floor ≤ {shown}: {'met' if value <= floor else 'NOT met'}"


def init_epochs(train_csv: Path) -> int:
    return int(yaml.safe_load(train_csv.with_name("speech.yaml").read_text())["train"]["epochs"])


def own(clips: Path, work: Path, threads: int, max_epochs: int | None, extra: list[str]) -> Path:
    run, minutes = init_and_train(clips / "train.csv", work / "own-run", threads, max_epochs, extra)
    m = run.metrics
    assert m["split"] == "test", f"init did not take test.csv as data.test (scored {m['split']})"
    print(
        f"own  5 speakers, {m['n']} held-out utterances: WER {m['wer']:.2%} ({floor_text(m['wer'], FLOORS['own'])}), "
        f"CER {m['cer']:.2%}, beam {m['beam']}; {trained_line(run, minutes, init_epochs(clips / 'train.csv'))}",
        flush=True,
    )
    print(f"own  {auto_line(work / 'own-run')}", flush=True)
    print(f"own  {int8_line(work / 'own-run')}", flush=True)
    return work / "own-run"


def int8_line(run_dir: Path) -> str:
    """`modelforge compress RUN --quantize int8-dynamic` of the trained run: its held-out WER and file size."""
    from modelforge.compress.recipe import CompressOptions
    from modelforge.speech.compress import compress_speech
    from modelforge.speech.run import load_speech_run

    out = compress_speech(run_dir, run_dir.with_name(run_dir.name + "-int8"), CompressOptions(quantize="int8-dynamic"))
    m = load_speech_run(out).metrics
    sizes = [(folder / "model.safetensors").stat().st_size / 1e6 for folder in (run_dir, out)]
    return (
        f"int8-dynamic (GRU and Linear weights): WER {m['wer']:.2%} (float {m['original_wer']:.2%}), CER "
        f"{m['cer']:.2%} (float {m['original_cer']:.2%}), decoding {m['decode_seconds']:.1f} s; weights "
        f"{sizes[1]:.1f} MB against {sizes[0]:.1f} MB"
    )


def loso_fold(
    clips: Path, work: Path, speaker: str, threads: int, max_epochs: int | None, extra: list[str]
) -> tuple[float, list[str]]:
    """Train without `speaker` and score on their test utterances: the WER and the lines to print."""
    train_csv = fold_tables(clips, work / f"loso-{speaker}", speaker)
    run_dir = work / f"loso-{speaker}" / "run"
    run, minutes = init_and_train(train_csv, run_dir, threads, max_epochs, extra)
    m = run.metrics
    return m["wer"], [
        f"loso without {speaker:<10} {m['n']} utterances: WER {m['wer']:.2%}, CER {m['cer']:.2%}; "
        f"{trained_line(run, minutes, init_epochs(train_csv))}",
        f"loso without {speaker:<10} {auto_line(run_dir)}",
    ]


def loso(
    clips: Path, work: Path, threads: int, max_epochs: int | None, extra: list[str], jobs: int, only: list[str]
) -> Path:
    speakers = sorted(pd.read_csv(clips / "test.csv")["speaker"].unique())  # real voices; synthetic ones only train
    if only:
        unknown = sorted(set(only) - set(speakers))
        if unknown:
            raise SystemExit(f"--speakers: {', '.join(unknown)} not among {', '.join(speakers)}")
        speakers = sorted(only)
    scores, started = {}, time.time()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        running = {
            pool.submit(loso_fold, clips, work, speaker, threads, max_epochs, extra): speaker for speaker in speakers
        }
        for done in as_completed(running):
            scores[running[done]], lines = done.result()
            print("\n".join(lines), flush=True)
    mean = sum(scores.values()) / len(scores)
    print(
        f"loso mean WER {mean:.2%} over {len(scores)} speakers ({floor_text(mean, FLOORS['loso'])}); "
        f"{(time.time() - started) / 60:.1f} min, {jobs} fold{'s' if jobs > 1 else ''} at a time",
        flush=True,
    )
    return work / f"loso-{speakers[0]}" / "run"


def rescore(work: Path, overrides: list[str]) -> None:
    """Each kept fold of an earlier `loso --work WORK` scored again on its test utterances with the run's
    config and `overrides` (decoding keys: speech.warps, speech.beam), beside the WER it wrote."""
    from dataclasses import replace

    from modelforge.speech.run import load_speech_run

    folds = sorted(path.parent.parent for path in work.glob("loso-*/run/eval.json"))
    if not folds:
        raise SystemExit(f"--work {work}: no finished loso-*/run folders")
    scores = []
    for fold in folds:
        run = load_speech_run(fold / "run")
        run = replace(run, config=load_config(fold / "run" / "config.yaml", overrides))
        m = run.evaluate(fold / "test.csv")
        scores.append(m["wer"])
        print(
            f"rescore {fold.name:<14} {m['n']} utterances: WER {m['wer']:.2%} (trained run {run.metrics['wer']:.2%}), "
            f"CER {m['cer']:.2%}; beam {m['beam']}, warps {m['warps']}",
            flush=True,
        )
    mean = sum(scores) / len(scores)
    print(f"rescore mean WER {mean:.2%} over {len(scores)} folds ({floor_text(mean, FLOORS['loso'])})", flush=True)


def timed_decode(run: Any, features: list[np.ndarray], batch: int, budget: float) -> tuple[float, list[str]]:
    """Seconds spent decoding the clips `batch` at a time in table order (model forward at each of the run's
    speech.warps + CTC decoding with its speech.beam and lexicon), and the transcripts of the clips decoded
    before `budget` seconds ran out."""
    from modelforge.speech.decode import Lexicon, prefix_beam_search
    from modelforge.speech.run import settings_of, warped_log_probs

    settings = settings_of(run.config)
    beam, lexicon = settings.beam, Lexicon.of(run.characters)
    texts: list[str] = []
    spent = 0.0
    for begin in range(0, len(features), batch):
        started = time.perf_counter()
        log_probs = warped_log_probs(run.model, features[begin : begin + batch], settings.warps, batch)
        texts += [run.characters.decode(prefix_beam_search(lp, beam, lexicon=lexicon)) for lp in log_probs]
        spent += time.perf_counter() - started
        if spent > budget:
            break
    return spent, texts


def real_time_factor(run_dir: Path, test_csv: Path, budget: float, repeats: int = 2) -> None:
    """Decoding seconds per audio second on the test clips: one batch of all and batch 1, 1 thread and 2."""
    from modelforge.speech.data import clips_features, read_clips
    from modelforge.speech.run import load_speech_run, settings_of

    run = load_speech_run(run_dir)
    settings = settings_of(run.config)
    clips = read_clips(test_csv, "text", None)
    durations = []
    for file in clips.files:
        with wave.open(str(file), "rb") as handle:
            durations.append(handle.getnframes() / handle.getframerate())
    started = time.perf_counter()
    features = clips_features(clips, settings, run.sample_rate)
    feature_seconds = time.perf_counter() - started
    print(
        f"rtf  features (WAV → log-mel, numpy, outside the floor): {feature_seconds / sum(durations):.4f} "
        f"({len(features)} clips, {sum(durations):.0f} s of audio)",
        flush=True,
    )
    previous = torch.get_num_threads()
    transcripts: list[list[str]] = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (len(features), 1):
            seconds, factors, texts = [], [], []
            while len(seconds) < repeats and sum(seconds) < budget / 4:
                spent, texts = timed_decode(run, features, batch, budget)
                seconds.append(spent)
                factors.append(spent / sum(durations[: len(texts)]))
                if len(texts) < len(features):
                    break
            transcripts.append(texts)
            rtf = min(factors)
            cut = (
                f", over the first {len(texts)} of {len(features)} clips (budget)" if len(texts) < len(features) else ""
            )
            print(
                f"rtf  decode beam {settings.beam}, warps {settings.warps}, "
                f"batch {batch:>3}, {threads} thread{'s' if threads > 1 else ''}: "
                f"{rtf:.4f} ({floor_text(rtf, FLOORS['rtf'], unit='x')}; best of {len(seconds)}: "
                f"{', '.join(f'{s:.2f}' for s in seconds)} s{cut}; load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    torch.set_num_threads(previous)
    same = all(texts == transcripts[0][: len(texts)] for texts in transcripts)
    print(f"rtf  same transcripts in every batch size and thread count: {same}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["own", "loso", "all", "rescore"])
    parser.add_argument("--scale", choices=list(SCALES), default="full")
    parser.add_argument("--utterances", type=int, help="training utterances (default: 2,000; small scale 300)")
    parser.add_argument("--threads", type=int, default=1, help="train.threads of every run")
    parser.add_argument("--work", type=Path, help="keep the clips and runs here (default: a temporary folder)")
    parser.add_argument("--fsdd", type=Path, help="folder holding recordings/ (default: the catalog's fsdd)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the utterances (test: seed + 1)")
    parser.add_argument("--jobs", type=int, default=1, help="loso: folds trained at once (one process each)")
    parser.add_argument("--speakers", nargs="+", default=[], help="loso: only these folds (default: every speaker)")
    parser.add_argument(
        "--voices", type=int, default=0, help="synthetic training voices (espeak-ng, up to 160; default none)"
    )
    parser.add_argument(
        "--voice-utterances", type=int, help="--voices: training utterances they speak (default: half --utterances)"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override")
    parser.add_argument(
        "--decode-budget",
        type=float,
        default=DECODE_BUDGET_SECONDS,
        help="rtf: seconds a setting decodes before it is scored on the clips it finished",
    )
    args = parser.parse_args()
    print_header()
    if args.suite == "rescore":
        if args.work is None:
            raise SystemExit("rescore: --work names the folder of an earlier loso run")
        rescore(args.work, args.overrides)
        return
    scale = SCALES[args.scale]
    count = args.utterances or scale["utterances"]
    pool = read_recordings(fsdd_folder(args.fsdd))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        clips = work / "clips"
        train = write_utterances(pool, count, False, clips, args.seed)
        if args.voices:
            synthetic = args.voice_utterances if args.voice_utterances is not None else count // 2
            train = write_utterances(
                synthetic_pool(args.voices), synthetic, False, clips, args.seed + 2, "voice-", train
            )
            print(f"data {synthetic} more training utterances from {args.voices} espeak-ng voices", flush=True)
        test = write_utterances(pool, scale["test"], True, clips, args.seed + 1)
        print(
            f"data {len(train)} training utterances ({train['seconds'].sum() / 3600:.2f} h, recordings "
            f"{TEST_INDEX}–49), {len(test)} test utterances ({test['seconds'].sum() / 3600:.2f} h, recordings "
            f"0–{TEST_INDEX - 1}), {train['speaker'].nunique()} speakers, {DIGITS[0]}–{DIGITS[1]} digits, gaps "
            f"{GAP_SECONDS[0] * 1000:.0f}–{GAP_SECONDS[1] * 1000:.0f} ms of {NOISE_DBFS:g} dBFS noise; scale "
            f"{args.scale}, {args.threads} training thread{'s' if args.threads > 1 else ''}; in {clips}",
            flush=True,
        )
        max_epochs = scale.get("max_epochs")
        timed = None
        if args.suite in ("own", "all"):
            timed = own(clips, work, args.threads, max_epochs, args.overrides), clips / "test.csv"
        if args.suite in ("loso", "all"):
            first = loso(clips, work, args.threads, max_epochs, args.overrides, args.jobs, args.speakers)
            timed = timed or (first, first.parent / "test.csv")
        assert timed is not None
        real_time_factor(*timed, args.decode_budget)


if __name__ == "__main__":
    main()
