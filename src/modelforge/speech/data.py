"""Speech data: a table of WAV paths and transcripts, checked, split, turned into log-mel frames.

A table (CSV/TSV/JSONL/Parquet) has a transcript column (`data.target`, default `text`) and a column of
WAV paths (`data.source`, else the one column whose values end in .wav), relative to the table's folder.
Each clip is decoded (stereo mixed to mono), resampled to the run's rate, and becomes an n_mels × frames
log-mel spectrogram normalised per utterance (each band to mean 0, variance 1 over the clip's own frames),
so recording level and channel colour do not move the features and nothing is fitted.

Refused in one line each (DataError): a WAV that does not decode, an empty transcript (naming the row),
a clip longer than `speech.max_seconds`, a missing column.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelforge.config import DataConfig, SpeechConfig
from modelforge.data.audio import AUDIO_SUFFIXES, log_mel, read_wav, resample
from modelforge.data.readers import holds_free_text, sample_table, separator_of
from modelforge.data.split import column_parts, split_rows
from modelforge.errors import DataError, did_you_mean
from modelforge.files import plain_suffix, read_utf8

DEFAULT_TARGET = "text"


@dataclass
class Clips:
    """Audio files and their transcripts (None where unknown: predict), with the table row of each."""

    files: list[Path]
    texts: list[str] | None
    rows: list[int]  # 1-based data rows of its table
    tables: list[str]  # the table each clip is listed in, for messages
    audio_name: str
    text_name: str
    parts: list[str] | None = None  # each clip's split (train / valid / test) where data.split.column names it

    def __len__(self) -> int:
        return len(self.files)

    def take(self, picked: np.ndarray) -> Clips:
        texts = None if self.texts is None else [self.texts[i] for i in picked]
        rows, tables = [self.rows[i] for i in picked], [self.tables[i] for i in picked]
        parts = None if self.parts is None else [self.parts[i] for i in picked]
        return Clips([self.files[i] for i in picked], texts, rows, tables, self.audio_name, self.text_name, parts)

    def where(self, index: int) -> str:
        """ "TABLE row N" of clip `index`."""
        return f"{self.tables[index]} row {self.rows[index]}"


def audio_column(frame: pd.DataFrame, target: str | None, source: str | None, where: str) -> str:
    """`source` when given (and present), else the one column of .wav paths beside the target."""
    if source is not None:
        if source not in frame.columns:
            raise DataError(
                f"{where}: audio column {source!r} missing{did_you_mean(source, map(str, frame.columns))} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
        return source
    found = [str(c) for c in frame.columns if c != target and holds_audio_paths(frame[c])]
    if len(found) != 1:
        raise DataError(
            f"{where}: set data.source to the column of WAV paths (columns holding .wav paths: "
            f"{', '.join(found) or 'none'}; columns: {', '.join(map(str, frame.columns))})"
        )
    return found[0]


def holds_audio_paths(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(20)
    return len(sample) > 0 and all(Path(v).suffix.lower() in AUDIO_SUFFIXES for v in sample)


def column_text(path: Path, frame: pd.DataFrame, column: str, rows: list[int]) -> list[str | None]:
    """The column's cells as written: a delimited file's raw text (pandas would read "014" as 14), else str()."""
    if plain_suffix(path) in {".csv", ".tsv"} and frame[column].dtype != object:
        reader = csv.reader(io.StringIO(read_utf8(path, DataError)), delimiter=separator_of(path))
        header = next(reader)
        index = header.index(column)
        cells = [row[index] if len(row) == len(header) else "" for row in reader if row]  # numbered as read_table
        return [cells[number - 1] for number in rows]
    return [None if pd.isna(v) else str(v) for v in frame[column]]


def read_clips(
    path: str | Path,
    target: str | None,
    source: str | None,
    bad_rows: str = "error",
    needs_text: bool = True,
    split_column: str | None = None,
) -> Clips:
    """The clips a table lists; with `needs_text`, their transcripts (an empty one is an error naming its row,
    or with bad_rows: skip, a row left out); with `split_column`, the split each clip is marked for."""
    from modelforge.data.readers import read_data_with_rows

    path = Path(path)
    frame, rows = read_data_with_rows(path, bad_rows)
    text_name = target or DEFAULT_TARGET
    where = str(path)
    audio_name = audio_column(frame, text_name, source, where)
    texts: list[str | None] | None = None
    if needs_text:
        if text_name not in frame.columns:
            raise DataError(
                f"{where}: transcript column {text_name!r} missing{did_you_mean(text_name, map(str, frame.columns))}"
                f"; set data.target (columns: {', '.join(map(str, frame.columns))})"
            )
        texts = column_text(path, frame, text_name, rows)
    marked = None if split_column is None else column_parts(frame, split_column, f" in {where}").tolist()
    files, kept_texts, kept_rows, kept_parts = [], [], [], []
    for index, value in enumerate(frame[audio_name]):
        text = texts[index] if texts is not None else ""
        if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
            raise DataError(f"{where}: row {rows[index]} has no audio path in column {audio_name!r}")
        if needs_text and (text is None or not text.strip()):
            if bad_rows == "skip":
                continue
            raise DataError(
                f"{where}: row {rows[index]} has an empty transcript in column {text_name!r}; "
                "remove the row (or set data.bad_rows: skip)"
            )
        file = Path(str(value)).expanduser()
        files.append(file if file.is_absolute() else path.parent / file)
        kept_texts.append(text or "")
        kept_rows.append(rows[index])
        if marked is not None:
            kept_parts.append(marked[index])
    if not files:
        raise DataError(f"{where}: no clips")
    texts_kept = kept_texts if needs_text else None
    parts = None if marked is None else kept_parts
    return Clips(files, texts_kept, kept_rows, [where] * len(files), audio_name, text_name, parts)


def read_table_clips(files: str | list[str], data: DataConfig, split_column: str | None = None) -> Clips:
    if isinstance(files, str):
        return read_clips(files, data.target, data.source, data.bad_rows, split_column=split_column)
    tables = [read_clips(f, data.target, data.source, data.bad_rows, split_column=split_column) for f in files]
    return Clips(
        [f for p in tables for f in p.files], [t for p in tables for t in p.texts or []],
        [r for p in tables for r in p.rows], [t for p in tables for t in p.tables], tables[0].audio_name,
        tables[0].text_name, None if split_column is None else [s for p in tables for s in p.parts or []],
    )  # fmt: skip


def split_clips(data: DataConfig, seed: int) -> tuple[Clips, Clips, Clips | None]:
    """Train, valid and test clips: data.valid / data.test when given, else the clips data.split.column
    marks, else seeded shares of data.train (data.split.valid, data.split.test). Test is None when
    nothing gives one."""
    # {source, target} files are refused for this task by its registry entry (Task.check_config)
    assert isinstance(data.train, str | list), data.train
    clips = read_table_clips(data.train, data, data.split.column)
    train_rows, valid_rows, test_rows = split_rows(len(clips), data, seed, "clips", clips.parts)
    valid = read_table_clips(str(data.valid), data) if data.valid is not None else clips.take(valid_rows)
    test = read_table_clips(str(data.test), data) if data.test is not None else clips.take(test_rows)
    return clips.take(train_rows), valid, (test if len(test) else None)


# ----------------------------------------------------------------------------- features
def most_common_rate(clips: Clips) -> int:
    """The sample rate most of the clips have (read from their headers where `wave` can)."""
    import wave

    rates: Counter[int] = Counter()
    for index, file in enumerate(clips.files):
        try:
            with wave.open(str(file), "rb") as handle:
                rates[handle.getframerate()] += 1
        except (wave.Error, EOFError, OSError):  # float WAVs; a file that does not decode is named by read_wav
            rates[read_wav_of_row(file, clips.where(index))[1]] += 1
    return rates.most_common(1)[0][0]


def read_wav_of_row(file: Path, where: str | None) -> tuple[np.ndarray, int]:
    try:
        return read_wav(file)
    except DataError as exc:
        raise DataError(f"{where}: {exc}" if where else str(exc)) from None


def clip_features(samples: np.ndarray, rate: int, settings: SpeechConfig, sample_rate: int) -> np.ndarray:
    """n_mels × frames float32: log-mel of the clip at `sample_rate`, each band normalised over the clip."""
    samples = resample(samples, rate, sample_rate)
    window = max(2, round(sample_rate * settings.window_ms / 1000))
    hop = max(1, round(sample_rate * settings.hop_ms / 1000))
    mel = log_mel(samples, sample_rate, settings.n_mels, window, hop)
    mean, std = mel.mean(axis=1, keepdims=True), mel.std(axis=1, keepdims=True)
    return ((mel - mean) / np.maximum(std, 1e-5)).astype(np.float32)


def check_length(samples: np.ndarray, rate: int, settings: SpeechConfig, name: str) -> None:
    seconds = len(samples) / rate
    if seconds > settings.max_seconds:
        raise DataError(
            f"{name}: lasts {seconds:.1f} s, longer than speech.max_seconds {settings.max_seconds:g}; "
            "cut the clip or raise speech.max_seconds"
        )


def usable_samples(file: Path, settings: SpeechConfig, where: str | None = None) -> tuple[np.ndarray, int]:
    """One WAV file's samples and rate; DataError naming the file (and `where`: its table row) when it
    does not decode or runs past speech.max_seconds."""
    samples, rate = read_wav_of_row(file, where)
    check_length(samples, rate, settings, f"{where}: {file}" if where else str(file))
    return samples, rate


def file_features(file: Path, settings: SpeechConfig, sample_rate: int, where: str | None = None) -> np.ndarray:
    """The features of one WAV file (errors as `usable_samples`')."""
    samples, rate = usable_samples(file, settings, where)
    return clip_features(samples, rate, settings, sample_rate)


def clips_features(clips: Clips, settings: SpeechConfig, sample_rate: int) -> list[np.ndarray]:
    return [file_features(file, settings, sample_rate, clips.where(i)) for i, file in enumerate(clips.files)]


def training_features(
    clips: Clips, settings: SpeechConfig, sample_rate: int, seed: int
) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Each training clip's features and, per clip, those of `speech.augment.copies` more recordings of it
    (speed, gain, noise, band, silence: data/audio_augment.py; [] when speech.augment renders none), each
    WAV read once. Clip i's copy k is drawn from a generator seeded with (seed, i, k): the same whenever
    the run is trained or resumed."""
    from modelforge.data.audio_augment import WaveAugment, augment_waveform

    augment = settings.augment
    fields = WaveAugment.__dataclass_fields__
    options = None if augment is None else WaveAugment(**{key: getattr(augment, key) for key in fields})
    copies = augment.copies if augment is not None and options is not None and options.active else 0
    features, renderings = [], []
    for index, file in enumerate(clips.files):
        samples, rate = usable_samples(file, settings, clips.where(index))
        features.append(clip_features(samples, rate, settings, sample_rate))
        if copies:
            assert options is not None
            recordings = [
                augment_waveform(samples, rate, options, np.random.default_rng([seed, index, copy]))
                for copy in range(copies)
            ]
            renderings.append([clip_features(recording, rate, settings, sample_rate) for recording in recordings])
    return features, renderings


def recognizes_speech_table(path: Path, target: str | None = None) -> bool:
    """For `modelforge init` with no --task: a table with a column of WAV paths whose target (--target, else
    `text`) is free text — mostly distinct values — rather than a class label."""
    frame = sample_table(path)
    name = target or DEFAULT_TARGET
    if (
        frame is None
        or name not in frame.columns
        or not any(holds_audio_paths(frame[c]) for c in frame.columns if c != name)
    ):
        return False
    return holds_free_text(frame[name])
