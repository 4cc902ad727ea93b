"""bench/speech.py cannot rot: on a tiny synthetic FSDD (a tone per digit, five "speakers", no ../shared
needed) its small scale must build the utterances, train `own` with init's config and print each figure
with its floor and the real-time factors; the `loso` folds' tables keep the left-out speaker apart."""

from __future__ import annotations

import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from speech import fold_tables  # noqa: E402  (bench/ is not a package)

RATE = 8000
SPEAKERS = ["ann", "bob", "cy", "dee", "eve"]


def write_recordings(folder: Path, per_digit: int = 6) -> Path:
    """recordings/<digit>_<speaker>_<index>.wav: 0.12 s tones, the pitch set by the digit and speaker."""
    (folder / "recordings").mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(0.12 * RATE)) / RATE
    for s, speaker in enumerate(SPEAKERS):
        for digit in range(10):
            for index in range(per_digit):
                pitch = 300.0 * 1.3**digit * (1 + 0.02 * s) * rng.uniform(0.98, 1.02)
                pcm = (0.5 * np.sin(2 * np.pi * pitch * t) * 32767).astype("<i2")
                with wave.open(str(folder / "recordings" / f"{digit}_{speaker}_{index}.wav"), "wb") as handle:
                    handle.setnchannels(1)
                    handle.setsampwidth(2)
                    handle.setframerate(RATE)
                    handle.writeframes(pcm.tobytes())
    return folder


def test_speech_bench_small_scale_prints_every_figure(tmp_path: Path) -> None:
    fsdd = write_recordings(tmp_path / "fsdd")
    work = tmp_path / "work"
    command = [sys.executable, str(ROOT / "bench" / "speech.py"), "own", "--scale", "small", "--utterances", "40"]
    command += ["--decode-budget", "1"]  # 2 threads on a busy 2-core machine decode slowly: time a slice
    result = subprocess.run(
        [*command, "--fsdd", str(fsdd), "--work", str(work)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.startswith("machine: "), out[:500]
    assert re.search(r"^own  5 speakers, 100 held-out utterances: WER [\d.]+% \(floor ≤ 5%: (met|NOT met)\)", out, re.M)
    assert re.search(r"^own  auto", out, re.M)
    assert re.search(r"^own  int8-dynamic \(GRU and Linear weights\): WER [\d.]+% \(float [\d.]+%\)", out, re.M)
    decoded = r"^rtf  decode beam 1, warps \[[\d., ]+\], batch +\d+, [12] threads?: [\d.]+ \(floor ≤ 0.05"
    assert len(re.findall(decoded, out, re.M)) == 4

    train = pd.read_csv(work / "clips" / "train.csv")
    test = pd.read_csv(work / "clips" / "test.csv")
    assert list(train.columns) == ["audio", "text", "speaker"] and len(train) == 40 and len(test) == 100
    assert all(3 <= len(text.split()) <= 7 for text in [*train["text"], *test["text"]])
    assert set(train["speaker"]) == set(test["speaker"]) == set(SPEAKERS)

    folder = tmp_path / "fold"
    fold_tables(work / "clips", folder, "ann")
    fold_train, fold_test = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv")
    assert set(fold_test["speaker"]) == {"ann"} and "ann" not in set(fold_train["speaker"])
    assert len(fold_train) == 32 and len(fold_test) == 20
    assert all((folder / audio).is_file() for audio in [*fold_train["audio"], *fold_test["audio"]])
