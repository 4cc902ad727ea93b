"""End to end on a small FSDD subset: train through the recipe, predict through the CLI, bad audio → exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import modelforge
from modelforge.config import AudioFeature
from modelforge.data.preprocess import infer_feature
from modelforge.data.readers import read_data

FSDD = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "fsdd"
pytestmark = pytest.mark.skipif(not (FSDD / "files.csv").exists(), reason=f"{FSDD} not present")


def subset(tmp_path: Path, per_digit: int = 6) -> Path:
    files = pd.read_csv(FSDD / "files.csv")
    files = files[files["speaker"] == "george"].groupby("label").head(per_digit)
    files = files.assign(split=["test" if i % 3 == 0 else "train" for i in range(len(files))])
    out = tmp_path / "files.csv"
    # relative paths, as in the dataset: read from the folder given by `root`
    files[["path", "label", "split"]].to_csv(out, index=False)
    return out


def test_train_predict_and_bad_audio(tmp_path: Path) -> None:
    files = subset(tmp_path)
    config = {
        "task": "classification",
        "data": {"train": str(files), "target": "label", "split": {"column": "split", "valid": 0.0}},
        "features": [{"name": "path", "type": "audio", "root": str(FSDD), "n_mels": 16, "augment": {"shift": 0.1}}],
        "model": {"type": "audio_cnn", "channels": [4, 8]},
        "train": {"epochs": 2, "batch_size": 16},
    }
    run = modelforge.train(config, tmp_path / "run")
    assert run.metrics["n"] == 20 and 0.0 <= run.metrics["accuracy"] <= 1.0
    assert run.model_info["input_spec"]["audio_shape"][:2] == [1, 16]

    rows = tmp_path / "rows.csv"
    pd.read_csv(files).head(3).drop(columns=["label", "split"]).to_csv(rows, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "modelforge", "predict", str(tmp_path / "run"), "--data", str(rows)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    predictions = pd.read_csv(pd.io.common.StringIO(done.stdout))
    assert len(predictions) == 3 and "probability_9" in predictions.columns

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"this is not audio")
    pd.DataFrame({"path": [str(broken)]}).to_csv(rows, index=False)
    failed = subprocess.run(
        [sys.executable, "-m", "modelforge", "predict", str(tmp_path / "run"), "--data", str(rows)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 2
    assert failed.stderr.strip().count("\n") == 0 and "cannot decode audio" in failed.stderr


def test_folder_per_class_becomes_an_audio_table(tmp_path: Path) -> None:
    for digit in ("3", "7"):
        (tmp_path / digit).mkdir()
        for take in range(2):
            (tmp_path / digit / f"{take}.wav").symlink_to(FSDD / "recordings" / f"{digit}_theo_{take}.wav")
    frame = read_data(tmp_path)
    assert list(frame.columns) == ["audio", "label"] and len(frame) == 4
    assert isinstance(infer_feature("audio", frame["audio"]), AudioFeature)
