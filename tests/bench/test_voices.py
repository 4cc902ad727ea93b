"""bench/_voices.py: the espeak-ng voices the spoken-digit benches add to their training data (`--voices N`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from _voices import MAX_VOICES, voices  # noqa: E402  (bench/ is not a package)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_without_espeak_ng_the_bench_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SystemExit, match="apt-get install espeak-ng"):
        voices(3)


@pytest.mark.parametrize("count", [0, MAX_VOICES + 1])
def test_a_voice_count_out_of_range_is_refused(count: int) -> None:
    with pytest.raises(SystemExit, match=f"--voices: 1 to {MAX_VOICES}"):
        voices(count)


@needs_espeak
def test_voices_are_the_same_on_every_call_and_the_first_few_span_the_accents() -> None:
    first, again = voices(8), voices(MAX_VOICES)[:8]
    assert first == again
    assert len({voice.name.split("+")[0] for voice in first}) == 8
    assert all(25 <= p <= 75 for voice in again for p in voice.pitch)


@needs_espeak
def test_a_voice_speaks_each_digit_at_the_rate_asked() -> None:
    from _voices import speak

    voice = voices(1)[0]
    seven = speak(voice, 7, 8000)
    assert seven.dtype == np.float32 and 0.2 < len(seven) / 8000 < 1.5
    assert np.abs(seven).max() > 0.05  # speech, not silence
    assert abs(len(speak(voice, 7, 16000)) - 2 * len(seven)) <= 2


@needs_espeak
def test_synthetic_voices_train_in_every_fold_and_are_never_held_out(tmp_path: Path) -> None:
    from test_speech_bench_smoke import SPEAKERS, write_recordings

    from speech import fold_tables, read_recordings, synthetic_pool, write_utterances

    pool = read_recordings(write_recordings(tmp_path / "fsdd"))
    clips = tmp_path / "clips"
    train = write_utterances(pool, 10, False, clips, 0)
    train = write_utterances(synthetic_pool(2), 6, False, clips, 2, "voice-", train)
    write_utterances(pool, 10, True, clips, 1)
    table = pd.read_csv(clips / "train.csv")
    assert len(table) == 16 and table["audio"].str.startswith("train/voice-").sum() == 6
    assert set(table["speaker"]) - set(SPEAKERS) == {"espeak en-us+m1", "espeak en-gb+m1"}
    fold_tables(clips, tmp_path / "fold", "ann")
    fold_train = pd.read_csv(tmp_path / "fold" / "train.csv")
    assert (fold_train["speaker"].str.startswith("espeak ")).sum() == 6 and "ann" not in set(fold_train["speaker"])
