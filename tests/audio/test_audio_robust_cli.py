"""A stranger's path on synthetic whistles: `init` then `train` with no edits gets the robust front end;
answers survive silence and gain; `evaluate --perturb`; bad audio is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import modelforge
from cli_runner import modelforge_in_process
from modelforge.data.audio import write_wav
from modelforge.data.audio_augment import gain, pad

RATE = 8000
BREAST_CANCER = Path(__file__).resolve().parents[2] / "examples" / "data" / "breast_cancer.csv"


def whistle(kind: str, seconds: float, level: float) -> np.ndarray:
    """low / high: a steady pitch; sweep: rising from low to high (told apart only by the order of sounds)."""
    t = np.arange(int(seconds * RATE)) / RATE
    hz = {"low": np.full_like(t, 400.0), "high": np.full_like(t, 1600.0), "sweep": 400.0 + 1200.0 * t / seconds}[kind]
    phase = 2 * np.pi * np.cumsum(hz) / RATE
    return (level * np.sin(phase) * np.hanning(len(t)) ** 0.2).astype(np.float32)


@pytest.fixture(scope="module")
def whistles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("whistles")
    rng = np.random.default_rng(0)
    rows = []
    for kind in ("low", "high", "sweep"):
        for index in range(16):
            clip = whistle(kind, rng.uniform(0.25, 0.45), rng.uniform(0.05, 0.3))
            clip = pad(clip, RATE, rng.uniform(0, 0.05), rng.uniform(0, 0.05), noise_rms=3e-4, seed=index)
            rows.append({"clip": str(write_wav(folder / f"{kind}{index}.wav", clip, RATE)), "label": kind})
    pd.DataFrame(rows).to_csv(folder / "files.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def run(whistles: Path) -> Path:
    config = whistles / "whistles.yaml"
    done = modelforge_in_process("init", str(whistles / "files.csv"), "--target", "label", "--out", str(config))
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load(config.read_text())
    assert written["model"] == {"type": "audio_cnn", "channels": [32, 64, 128], "convs_per_block": 2}
    assert written["features"] == [{"name": "clip", "type": "audio"}]
    out = whistles / "run"
    trained = modelforge_in_process(
        "train", str(config), "--out", str(out), "--no-progress",
        "--set", "train.epochs=12", "--set", "train.batch_size=16", "--set", "train.lr=0.003",
        "--set", "model.channels=[8,16]", "--set", "data.split.test=0.0",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    return out


def test_init_then_train_saves_the_robust_front_end(run: Path) -> None:
    text = (run / "preprocessing.json").read_text()  # what predict, serve and export rebuild the front end from
    for saved in (
        '"remove_dc": true',
        '"trim_db": 35.0',
        '"length": "stretch"',
        '"gain": "rms"',
        '"max_duration": 30.0',
        '"copies": 4',
    ):
        assert saved in text


def test_silence_and_gain_do_not_change_the_answer(run: Path, whistles: Path, tmp_path: Path) -> None:
    loaded = modelforge.load_run(run)
    clips = {kind: whistle(kind, 0.35, 0.2) for kind in ("low", "high", "sweep")}
    rows = []
    for kind, clip in clips.items():
        for shift, shifted in {
            "clean": clip,
            "silence": pad(clip, RATE, 0.3, 0.3),
            "louder": gain(clip, 10.0),
            "quieter": gain(clip, -10.0),
        }.items():
            rows.append({"clip": str(write_wav(tmp_path / f"{kind}-{shift}.wav", shifted, RATE)), "kind": kind})
    answers = loaded.predict(pd.DataFrame(rows)[["clip"]])
    probabilities = answers.filter(like="probability_").to_numpy()
    for group in range(3):
        block = slice(4 * group, 4 * group + 4)
        assert answers["prediction"][block].nunique() == 1
        assert np.abs(probabilities[block] - probabilities[4 * group]).max() < 0.02
    assert list(answers["prediction"][::4]) == ["low", "high", "sweep"]


def test_evaluate_perturb_reports_each_shift_beside_clean(run: Path, whistles: Path) -> None:
    data = str(whistles / "files.csv")
    done = modelforge_in_process("evaluate", str(run), "--data", data, "--perturb", "silence,gain", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert list(result) == ["metric", "clean", "silence_0.3s", "gain_+10dB", "gain_-10dB"]
    assert result["metric"] == "accuracy" and all(0.0 <= result[k] <= 1.0 for k in list(result)[1:])
    assert abs(result["silence_0.3s"] - result["clean"]) <= 0.02 and abs(result["gain_-10dB"] - result["clean"]) <= 0.02
    text = modelforge_in_process("evaluate", str(run), "--data", data, "--perturb", "speed")
    assert text.returncode == 0 and [line.split()[0] for line in text.stdout.splitlines()] == [
        "clean",
        "speed_0.9",
        "speed_1.1",
    ]


def one_line(done: object, fragment: str) -> None:
    assert done.returncode == 2, done.stderr  # type: ignore[attr-defined]
    lines = [line for line in done.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1 and fragment in lines[0], lines


def test_perturb_is_refused_in_one_line_without_audio(mlp_run: Path, run: Path) -> None:
    one_line(
        modelforge_in_process("evaluate", str(mlp_run), "--data", str(BREAST_CANCER), "--perturb", "gain"),
        "has no audio feature",
    )
    one_line(modelforge_in_process("evaluate", str(run), "--perturb", "gain"), "--perturb: needs --data")
    one_line(
        modelforge_in_process("evaluate", str(run), "--data", str(BREAST_CANCER), "--perturb", "echo"),
        "unknown perturbation 'echo'",
    )


def test_bad_audio_inputs(run: Path, tmp_path: Path) -> None:
    import wave

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav")
    long = write_wav(tmp_path / "long.wav", np.tile(whistle("low", 0.5, 0.2), 62), RATE)  # 31 s > max_duration 30
    # stereo at 44.1 kHz: mixed to mono and resampled to the run's 8 kHz, so it is answered like the 8 kHz clip
    t = np.arange(int(0.35 * 44100)) / 44100
    stereo = (0.2 * np.sin(2 * np.pi * 1600 * t) * np.hanning(len(t)) ** 0.2 * 32767).astype("<i2")
    with wave.open(str(tmp_path / "stereo.wav"), "wb") as handle:
        handle.setnchannels(2), handle.setsampwidth(2), handle.setframerate(44100)
        handle.writeframes(np.repeat(stereo, 2).tobytes())
    for path, fragment in ((broken, "cannot decode audio"), (long, "longer than max_duration 30 s")):
        pd.DataFrame({"clip": [str(path)]}).to_csv(tmp_path / "rows.csv", index=False)
        one_line(modelforge_in_process("predict", str(run), "--data", str(tmp_path / "rows.csv")), fragment)
    pd.DataFrame({"clip": [str(tmp_path / "stereo.wav")]}).to_csv(tmp_path / "rows.csv", index=False)
    done = modelforge_in_process("predict", str(run), "--data", str(tmp_path / "rows.csv"))
    assert done.returncode == 0, done.stderr
    assert "high" in done.stdout


def test_resume_with_recording_shifts_is_bitwise(whistles: Path, tmp_path: Path) -> None:
    """The rendered copies come from (seed, row, copy) and the per-batch pick from the checkpointed torch RNG."""
    from modelforge.config import load_config
    from modelforge.training.recipe import train

    config = load_config(
        {
            "task": "classification",
            "data": {"train": str(whistles / "files.csv"), "target": "label", "split": {"valid": 0.2, "test": 0.0}},
            "features": [{"name": "clip", "type": "audio", "n_mels": 16, "augment": {"copies": 2, "shift": 0.1}}],
            "model": {"type": "audio_cnn", "channels": [4, 8]},
            "train": {"epochs": 3, "batch_size": 8, "threads": 1},
        }
    )
    reference = train(config, tmp_path / "reference", show_progress=False).path

    def stop_after_two(row: dict) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", show_progress=False, on_epoch=stop_after_two)
    resumed = train(config, show_progress=False, resume=tmp_path / "resumed").path
    assert (reference / "model.safetensors").read_bytes() == (resumed / "model.safetensors").read_bytes()
