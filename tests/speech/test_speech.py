"""task: speech-recognition end to end on tone-letters (tests/speech/tones.py): it learns, and evaluate,
predict and serve give the transcripts; decoding (greedy, prefix beam ≥ greedy); init infers the task and
its config trains; stereo and other rates are mixed and resampled; bad input refused in one line; a killed
run resumed ends bitwise equal."""

from __future__ import annotations

import base64
import json
import math
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tones import RATE, render, tiny_config, write_pcm, write_tones

from cli_runner import modelforge_in_process, newest_step, signal_when
from modelforge.config import load_config
from modelforge.errors import ConfigError, DataError
from modelforge.models.speech import SpeechSpec, ctc_rnn, subsampled_lengths
from modelforge.speech.data import clips_features, read_clips, recognizes_speech_table, training_features
from modelforge.speech.decode import Lexicon, greedy_decode, prefix_beam_search
from modelforge.speech.recipe import ctc_loss, ctc_loss_of, train_speech
from modelforge.speech.run import load_speech_run
from modelforge.speech.tokens import BLANK, Characters, fit_characters, load_characters, save_characters
from modelforge.training.mixup import Blend


def one_line_exit_2(*args: str) -> str:
    result = modelforge_in_process(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, f"rc {result.returncode}: {result.stderr[-1500:]}"
    return lines[0]


# ----------------------------------------------------------------------------- the task, end to end
def test_a_small_model_learns_the_tone_letters(tones_run: Path, fresh_csv: Path) -> None:
    run = load_speech_run(tones_run)
    assert run.metrics["split"] == "test" and run.metrics["cer"] < 0.2, run.metrics  # chance: ~0.8
    assert run.evaluate(fresh_csv)["cer"] < 0.2
    assert (tones_run / "tokens.json").is_file() and not list(tones_run.glob("*.pkl"))
    assert json.loads((tones_run / "tokens.json").read_text())["characters"] == list("abcde")
    assert run.history[-1]["valid_cer"] < run.history[0]["valid_cer"]


def test_evaluate_prints_wer_cer_and_n(tones_run: Path, fresh_csv: Path) -> None:
    result = modelforge_in_process("evaluate", str(tones_run), "--data", str(fresh_csv), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 60 and 0.0 <= metrics["cer"] < 0.2 and 0.0 <= metrics["wer"] <= 1.0


def test_predict_writes_row_and_prediction(tones_run: Path, fresh_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.csv"
    result = modelforge_in_process("predict", str(tones_run), "--data", str(fresh_csv), "--out", str(out))
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(out, keep_default_na=False)
    assert list(predictions.columns) == ["row", "prediction"] and list(predictions["row"]) == list(range(1, 61))
    truth = pd.read_csv(fresh_csv)["text"]
    assert (predictions["prediction"] == truth).mean() > 0.6
    line = one_line_exit_2("predict", str(tones_run), "--data", str(fresh_csv), "--threshold", "0.5")
    assert "--threshold" in line


def test_compress_int8_dynamic_keeps_the_transcripts_and_reloads_exactly(
    tones_run: Path, fresh_csv: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from modelforge.compress.quantize import dynamic_int8
    from modelforge.speech.run import frame_log_probs, settings_of

    out = tmp_path / "int8"
    result = modelforge_in_process("compress", str(tones_run), "--out", str(out), "--quantize", "int8-dynamic")
    assert result.returncode == 0, result.stderr
    original, compressed = load_speech_run(tones_run), load_speech_run(out)
    assert compressed.model_info["quantization"] == "int8-dynamic"
    metrics = compressed.metrics
    assert metrics["split"] == "test" and metrics["original_cer"] == original.metrics["cer"]
    assert metrics["cer"] <= original.metrics["cer"] + 0.05, metrics  # int8 weights cost little
    assert compressed.evaluate(fresh_csv)["cer"] < 0.2
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in compressed.model.modules())
    clips = compressed.read(fresh_csv, needs_text=False)
    features = clips_features(clips, settings_of(compressed.config), compressed.sample_rate)[:4]
    rebuilt = dynamic_int8(original.model)  # what compress quantized, built again in memory
    saved, in_memory = frame_log_probs(compressed.model, features), frame_log_probs(rebuilt, features)
    assert all(np.array_equal(a, b) for a, b in zip(saved, in_memory, strict=True))  # the saved int8 values
    floats = frame_log_probs(original.model, features)
    assert not all(np.array_equal(a, b) for a, b in zip(saved, floats, strict=True))  # and not the float model
    assert (out / "model.safetensors").stat().st_size < 0.5 * (tones_run / "model.safetensors").stat().st_size
    assert "rnn.weight_ih_l0" not in load_file(str(out / "model.safetensors"))  # the GRU is stored packed
    again_refused = one_line_exit_2("compress", str(out), "--out", str(tmp_path / "x"), "--quantize", "int8-dynamic")
    assert "already quantized" in again_refused
    static = one_line_exit_2("compress", str(tones_run), "--out", str(tmp_path / "s"), "--quantize", "int8-static")
    assert (
        static
        == "error: compress: speech-recognition runs take --quantize int8-dynamic only, got --quantize int8-static"
    )
    assert not (tmp_path / "x").exists() and not (tmp_path / "s").exists()


def wav_bytes(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_serve_answers_base64_wavs_and_data_urls(tones_run: Path, fresh_csv: Path) -> None:
    from fastapi.testclient import TestClient

    from modelforge.serve.app import create_app
    from modelforge.serve.services import load_services

    table = pd.read_csv(fresh_csv)
    clips = [fresh_csv.parent / p for p in table["audio"][:3]]
    expected = load_speech_run(tones_run).transcribe_files(clips)
    with TestClient(create_app(load_services([f"asr={tones_run}"]))) as client:
        info = client.get("/v1/models/asr").json()
        assert info["endpoint"] == "predict" and info["features"][0]["name"] == "audio"
        records = [
            {"audio": wav_bytes(clips[0])},
            {"audio": "data:audio/wav;base64," + wav_bytes(clips[1])},
            {"audio": wav_bytes(clips[2])},
        ]
        answer = client.post("/v1/models/asr/predict", json={"records": records})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [{"text": text} for text in expected]
        broken = client.post(
            "/v1/models/asr/predict", json={"records": [{"audio": base64.b64encode(b"RIFFxx").decode()}]}
        )
        assert broken.status_code == 422 and "audio" in broken.text
        path = client.post("/v1/models/asr/predict", json={"records": [{"audio": "/etc/passwd.wav"}]})
        assert path.status_code == 422 and "base64" in path.text


def test_stereo_and_other_rates_are_mixed_and_resampled(tones_run: Path, tmp_path: Path) -> None:
    run = load_speech_run(tones_run)
    samples = render("bead", np.random.default_rng(5))
    mono = write_pcm(tmp_path / "mono.wav", samples)
    stereo = write_pcm(tmp_path / "stereo.wav", samples, channels=2)
    resampled = np.interp(np.arange(len(samples) * 2) / 2, np.arange(len(samples)), samples).astype(np.float32)
    faster = write_pcm(tmp_path / "16k.wav", resampled, rate=2 * RATE)
    transcripts = run.transcribe_files([mono, stereo, faster])
    assert transcripts == [transcripts[0]] * 3 and transcripts[0] in ("bead", "bed", "bea", "ead", "bad")


def test_report_shows_the_error_rates_and_curves(tones_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = modelforge_in_process("report", str(tones_run), "--out", str(out), "--no-explain")
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert "cer" in page and "valid_cer" in page


def test_tune_minimizes_the_validation_cer(tones_csv: Path, tmp_path: Path) -> None:
    config = tiny_config(str(tones_csv), epochs=2)
    config["tune"] = {"space": {"train.lr": {"loguniform": [1e-3, 5e-3]}}, "metric": "valid_cer", "trials": 2}
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(config))
    result = modelforge_in_process("tune", str(tmp_path / "tune.yaml"), "--out", str(tmp_path / "study"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("complete") >= 2, result.stdout
    assert json.loads((tmp_path / "study" / "study.json").read_text())["direction"] == "minimize"


# ----------------------------------------------------------------------------- decoding
def test_greedy_merges_repeats_and_drops_blanks() -> None:
    frames = np.log(np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]))
    assert greedy_decode(frames) == [1, 1, 2]
    assert prefix_beam_search(frames, 1) == [1, 1, 2]


def test_prefix_beam_search_finds_the_sequence_greedy_splits() -> None:
    # per frame the blank is best, but "1" over both frames (1-, -1, 11) is likelier than the empty sequence
    frames = np.log(np.array([[0.4, 0.35, 0.25], [0.4, 0.35, 0.25]]))
    assert greedy_decode(frames) == []
    p_empty, p_one = 0.4 * 0.4, 0.35 * 0.4 * 2 + 0.35 * 0.35
    assert p_one > p_empty and prefix_beam_search(frames, 4) == [1]


def spelled(characters: Characters, text: str, sure: float = 0.9) -> np.ndarray:
    """Frames × vocab log-probabilities that say `text` one symbol a frame, a blank between symbols."""
    rows = []
    for symbol in characters.encode(text):
        for best in (symbol, BLANK):
            row = np.full(characters.vocab_size, (1 - sure) / (characters.vocab_size - 1))
            row[best] = sure
            rows.append(row)
    return np.log(np.array(rows))


def test_a_lexicon_turns_near_words_into_words() -> None:
    characters = fit_characters(["one two", "two nine five"], lowercase=True, lexicon=True)
    lexicon = Lexicon.of(characters)
    assert lexicon is not None and characters.words == ("five", "nine", "one", "two")
    frames = spelled(characters, "fivee nin")  # what an unsure acoustic model says
    assert characters.decode(prefix_beam_search(frames, 4)) == "fivee nin"
    assert characters.decode(prefix_beam_search(frames, 4, lexicon=lexicon)) == "five nine"
    clear = spelled(characters, "two one")  # a lexicon changes nothing the model is sure of
    assert characters.decode(prefix_beam_search(clear, 4, lexicon=lexicon)) == "two one"
    assert Lexicon.of(fit_characters(["one two"], lowercase=True)) is None  # off unless speech.lexicon
    cut_short = spelled(characters, "one fi")  # the clip ends before "five" can: the unfinished word is left out
    assert characters.decode(prefix_beam_search(cut_short, 1, lexicon=lexicon)) == "one"
    commands = fit_characters(["stop", "go", "left"], lowercase=True, lexicon=True)  # one word a clip: no space
    said = prefix_beam_search(spelled(commands, "lef"), 4, lexicon=Lexicon.of(commands))
    assert commands.decode(said) == "left"


def test_the_lexicon_is_saved_with_the_characters(tmp_path: Path) -> None:
    characters = fit_characters(["One two", "two"], lowercase=True, lexicon=True)
    save_characters(characters, tmp_path / "tokens.json")
    assert load_characters(tmp_path / "tokens.json") == characters and characters.words == ("one", "two")


def test_beam_is_at_least_as_good_as_greedy(tones_run: Path, fresh_csv: Path) -> None:
    run = load_speech_run(tones_run)
    greedy, beamed = run.evaluate(fresh_csv, beam=1), run.evaluate(fresh_csv, beam=4)
    assert beamed["beam"] == 4 and beamed["cer"] <= greedy["cer"] + 0.01, (greedy, beamed)


def test_decoding_warps_the_bands_as_training_does() -> None:
    from modelforge.data.audio import stretch_axis, warp_bands

    features = np.random.default_rng(0).normal(size=(40, 30)).astype(np.float32)
    assert np.array_equal(warp_bands(features, 1.0), features)
    for factor in (0.9, 1.05, 1.2):  # the training's band warp (augment.warp) at one factor
        trained = stretch_axis(torch.from_numpy(features)[None, None], torch.tensor([factor]), bands_axis=True)
        assert np.allclose(warp_bands(features, factor), trained[0, 0].numpy(), atol=1e-4), factor
    assert np.allclose(warp_bands(features, 0.5)[10], features[5])  # band 10 reads band 5


def test_warps_average_the_frame_probabilities(tones_run: Path, fresh_csv: Path, tmp_path: Path) -> None:
    from modelforge.speech.run import frame_log_probs, warped_log_probs

    run = load_speech_run(tones_run)
    features = clips_features(read_clips(fresh_csv, None, None), run.config.speech, run.sample_rate)[:8]
    plain = frame_log_probs(run.model, features)
    assert all(np.array_equal(a, b) for a, b in zip(plain, warped_log_probs(run.model, features, [1.0]), strict=True))
    averaged = warped_log_probs(run.model, features, [0.8, 1.0])
    assert all(np.allclose(np.exp(lp).sum(-1), 1.0, atol=1e-4) for lp in averaged)  # still a distribution a frame
    assert not all(np.allclose(a, b) for a, b in zip(plain, averaged, strict=True))
    # the tone letters are pitches: heard only at a warp the model never trained on, they are misread;
    # beside the features as they are, the plain probabilities carry most frames
    moved = tmp_path / "run"
    shutil.copytree(tones_run, moved)
    config = yaml.safe_load((moved / "config.yaml").read_text())
    scores = {}
    for warps in ([1.0], [1.3], [1.0, 1.3]):
        config["speech"]["warps"] = warps
        (moved / "config.yaml").write_text(yaml.safe_dump(config))
        result = modelforge_in_process("evaluate", str(moved), "--data", str(fresh_csv), "--json")
        assert result.returncode == 0, result.stderr
        metrics = json.loads(result.stdout)
        assert metrics["warps"] == warps
        scores[len(warps), warps[-1]] = metrics["cer"]
    assert scores[1, 1.3] > scores[1, 1.0] + 0.2 and scores[2, 1.3] < scores[1, 1.3], scores


def test_characters_round_trip_through_json(tmp_path: Path) -> None:
    characters = fit_characters(["Bad Cab", "ace"], lowercase=True)
    assert characters.characters == (" ", "a", "b", "c", "d", "e") and characters.vocab_size == 7
    save_characters(characters, tmp_path / "tokens.json")
    loaded = load_characters(tmp_path / "tokens.json")
    assert loaded == characters and loaded.decode(loaded.encode("Bad ace")) == "bad ace"


def test_tables_keep_transcripts_as_written_in_csv_tsv_and_jsonl(tmp_path: Path) -> None:
    write_pcm(tmp_path / "a.wav", np.zeros(800, dtype=np.float32))
    rows = [{"clip": "a.wav", "text": "014"}, {"clip": "a.wav", "text": "7"}, {"clip": "a.wav", "text": ""}]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame(rows).to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("t.csv", "t.tsv", "t.jsonl"):
        clips = read_clips(tmp_path / name, None, None, bad_rows="skip")  # skip: the empty transcript is left out
        assert clips.texts == ["014", "7"] and clips.rows == [1, 2] and clips.audio_name == "clip", name
        assert clips.files == [tmp_path / "a.wav"] * 2


# ----------------------------------------------------------------------------- init
def test_init_infers_the_task_and_its_config_trains(tones_csv: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "cfg.yaml"
    result = modelforge_in_process("init", str(tones_csv), "--target", "text", "--out", str(config_path))
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(config_path.read_text())
    assert config["task"] == "speech-recognition" and config["model"]["type"] == "ctc_rnn"
    assert config["speech"]["sample_rate"] == RATE and config["train"]["epochs"] >= 15
    assert config["speech"]["warps"] == [0.9, 0.95, 1.0, 1.05, 1.1]  # across the training's band warp
    loaded = load_config(config_path, ["train.epochs=1", "train.threads=1"])  # one epoch: the config is valid as is
    run = train_speech(loaded, tmp_path / "run")
    assert run.metrics["n"] == 20 and math.isfinite(run.metrics["cer"])


def test_init_keeps_a_closed_vocabulary_to_its_words() -> None:
    from modelforge.speech.init import decoding

    digits = [" ".join(np.random.default_rng(i).choice(["one", "two", "three"], size=4)) for i in range(20)]
    assert decoding(digits) == {"beam": 4, "lexicon": True}  # 3 words heard 80 times
    sentences = [f"the {i} cats sat on mat {i}" for i in range(100)]  # a new word in every sentence
    assert decoding(sentences) == {"beam": 1}


def test_init_takes_val_and_test_tables_beside_a_train_table(tmp_path: Path) -> None:
    for name, n, seed in (("train.csv", 40, 2), ("val.csv", 8, 3), ("test.csv", 8, 4)):
        write_tones(tmp_path, n=n, seed=seed, name=name)
    result = modelforge_in_process("init", str(tmp_path / "train.csv"), "--target", "text")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["task"] == "speech-recognition" and "split" not in config["data"]
    assert config["data"]["valid"].endswith("val.csv") and config["data"]["test"].endswith("test.csv")


def test_a_split_column_marks_the_test_clips_and_init_writes_it(tmp_path: Path) -> None:
    """A column naming each clip's split: init writes it as data.split.column, its test clips are the
    run's test clips, validation is drawn from the clips it marks train, and no clip is in two parts."""
    from modelforge.speech.data import split_clips

    table = write_tones(tmp_path, n=48, seed=5)
    frame = pd.read_csv(table)
    frame["part"] = ["train"] * 40 + ["Test"] * 8
    frame.to_csv(table, index=False)
    result = modelforge_in_process("init", str(table), "--target", "text", "--out", str(tmp_path / "cfg.yaml"))
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load((tmp_path / "cfg.yaml").read_text())
    assert written["data"]["split"] == {"column": "part", "valid": 0.1, "test": 0.0}
    train, valid, test = split_clips(load_config(tmp_path / "cfg.yaml").data, seed=0)
    marked_test = {str(tmp_path / p) for p in frame["audio"][40:]}
    assert test is not None and {str(f) for f in test.files} == marked_test
    assert len(valid) == 4 and len(train) == 36  # 10 % of the 40 marked train
    assert not {str(f) for f in train.files} & ({str(f) for f in valid.files} | marked_test)
    frame.assign(part=["train"] * 47 + ["holdout"]).to_csv(table, index=False)
    with pytest.raises(DataError, match=r"data.split.column .part.: expected train, valid or test"):
        split_clips(load_config(tmp_path / "cfg.yaml").data, seed=0)


def test_a_table_of_clips_with_a_class_label_is_not_speech(tones_csv: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(tones_csv)
    frame["first"] = frame["text"].str[0]
    labelled = tones_csv.parent / "labelled.csv"
    frame.to_csv(labelled, index=False)
    assert recognizes_speech_table(labelled, "text") and not recognizes_speech_table(labelled, "first")


# ----------------------------------------------------------------------------- bad input
def bad_table(folder: Path, tones_csv: Path, change: dict[int, dict[str, str]]) -> Path:
    frame = pd.read_csv(tones_csv).head(30)
    frame["audio"] = [str(tones_csv.parent / p) for p in frame["audio"]]
    for row, values in change.items():
        for column, value in values.items():
            frame.loc[row, column] = value
    path = folder / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def train_args(tmp_path: Path, data: Path, **speech: object) -> list[str]:
    config = tiny_config(str(data), epochs=1)
    config["speech"].update(speech)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    return ["train", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "run")]


def test_a_wav_that_does_not_decode_is_refused_naming_the_row(tones_csv: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
    data = bad_table(tmp_path, tones_csv, {6: {"audio": str(tmp_path / "broken.wav")}})
    line = one_line_exit_2(*train_args(tmp_path, data))
    assert "row 7" in line and "broken.wav" in line and "cannot decode" in line


def test_an_empty_transcript_is_refused_naming_the_row(tones_csv: Path, tmp_path: Path) -> None:
    data = bad_table(tmp_path, tones_csv, {4: {"text": ""}})
    line = one_line_exit_2(*train_args(tmp_path, data))
    assert "row 5 has an empty transcript in column 'text'" in line


def test_a_clip_over_the_maximum_is_refused_naming_the_file(tones_csv: Path, tmp_path: Path) -> None:
    long_clip = write_pcm(tmp_path / "long.wav", np.zeros(RATE * 3, dtype=np.float32))
    data = bad_table(tmp_path, tones_csv, {2: {"audio": str(long_clip)}})
    line = one_line_exit_2(*train_args(tmp_path, data, max_seconds=2))
    assert "long.wav: lasts 3.0 s, longer than speech.max_seconds 2" in line


def test_config_keys_the_task_does_not_read_are_errors(tones_csv: Path) -> None:
    config = tiny_config(str(tones_csv))
    config["train"]["label_smoothing"] = 0.1
    with pytest.raises(ConfigError, match=r"train\.label_smoothing: not used by task speech-recognition"):
        load_config(config)
    with pytest.raises(ConfigError, match=r"speech: not used by task classification"):
        load_config({"task": "classification", "data": {"train": "x.csv"}, "speech": {"beam": 2}})
    with pytest.raises(ConfigError, match=r"model.type: task speech-recognition takes ctc_rnn"):
        load_config({**tiny_config(str(tones_csv)), "model": {"type": "mlp"}})
    with pytest.raises(ConfigError, match=r"data.split.column: not used by task generation"):
        load_config({"task": "generation", "data": {"train": "x.npz", "target": "y", "split": {"column": "part"}}})
    shifted = tiny_config(str(tones_csv))
    shifted["speech"]["augment"] = {"shift": 0.1}
    with pytest.raises(ConfigError, match=r"speech.augment: shift and stretch move frames away from their words"):
        load_config(shifted)
    warped = tiny_config(str(tones_csv))
    warped["speech"]["warps"] = [1.0, 2.0]
    with pytest.raises(ConfigError, match=r"speech.warps: each warp between 0.5 and 1.5"):
        load_config(warped)


def test_augmented_renderings_are_seeded_and_differ_from_the_clip(tones_csv: Path) -> None:
    config = tiny_config(str(tones_csv))
    config["speech"]["augment"] = {"copies": 2, "speed": 0.1, "gain_db": 10.0}
    settings = load_config(config).speech
    assert settings is not None
    clips = read_clips(tones_csv, "text", None).take(np.arange(3))
    clean, first = training_features(clips, settings, RATE, seed=0)
    again = training_features(clips, settings, RATE, seed=0)[1]
    other = training_features(clips, settings, RATE, seed=1)[1]
    assert all(np.array_equal(a, b) for a, b in zip(clean, clips_features(clips, settings, RATE), strict=True))
    assert len(first) == 3 and all(len(copies) == 2 for copies in first)
    flat = lambda renderings: [copy for copies in renderings for copy in copies]  # noqa: E731
    assert all(np.array_equal(a, b) for a, b in zip(flat(first), flat(again), strict=True))
    assert not np.array_equal(first[0][0], other[0][0])
    for copies, clip in zip(first, clean, strict=True):  # sped up or slowed down: other lengths, other values
        assert all(copy.shape[1] != clip.shape[1] or not np.allclose(copy, clip) for copy in copies)
    assert training_features(clips, settings.model_copy(update={"augment": None}), RATE, seed=0)[1] == []


# ----------------------------------------------------------------------------- checkpoints
def test_a_killed_run_resumed_ends_bitwise_equal(tones_csv: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    config = tiny_config(str(tones_csv), epochs=8, checkpoint_every=5, precision="fp32")
    config["model"]["dropout"] = 0.1  # the dropout masks' random stream is part of what resumes
    # so are the renderings each row picks and the spectrogram masks
    config["speech"]["augment"] = {"copies": 1, "speed": 0.05, "warp": 0.05, "freq_masks": 1, "time_masks": 1}
    config["train"]["average_from"] = 0.25  # and the weight average, begun at step 20, before the kill
    config["train"]["mixup"] = 0.4  # and the blends each batch draws
    config["train"]["keep_best"] = False  # the last weights (the average), not an epoch's from before the kill
    reference = train_speech(load_config(config), tmp_path / "reference").path
    run_dir = tmp_path / "stopped"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "modelforge", "train", str(tmp_path / "run.yaml"), "--no-progress"]
    process = subprocess.Popen(
        [*command, "--out", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    signal_when(process, lambda: newest_step(run_dir) >= 25, signal.SIGKILL)  # past epoch 2 (10 steps each)
    assert not (run_dir / "model.json").exists()
    resumed = train_speech(load_config(config), resume=run_dir)
    assert (resumed.path / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(load_speech_run(reference).history)


def test_write_tones_is_deterministic(tmp_path: Path) -> None:
    first = write_tones(tmp_path / "a", n=3, seed=4)
    second = write_tones(tmp_path / "b", n=3, seed=4)
    assert first.read_text() == second.read_text()
    assert (first.parent / "wav" / "4-0.wav").read_bytes() == (second.parent / "wav" / "4-0.wav").read_bytes()


def test_mixup_blends_the_spectrograms_over_the_longer_clip_and_the_losses_of_both_transcripts() -> None:
    torch.manual_seed(0)
    model = ctc_rnn(SpeechSpec(n_mels=8, vocab=5), 5, width=8, layers=1).eval()  # no dropout: one answer
    features, lengths = torch.randn(3, 8, 40), torch.tensor([40, 24, 31])
    features[1, :, 24:] = 0.0  # padding, as make_batch leaves it
    features[2, :, 31:] = 0.0
    targets, target_lengths = torch.tensor([1, 2, 3, 4, 4, 1, 2, 3]), torch.tensor([3, 2, 3])
    blend = Blend(torch.tensor([2, 0, 1]), 0.7)
    mixed = 0.7 * features + 0.3 * features[[2, 0, 1]]
    logits, frames = model(mixed, torch.tensor([40, 40, 31]))
    plain = lambda t, n: ctc_loss(logits, frames, t, n)  # noqa: E731
    expected = 0.7 * plain(targets, target_lengths) + 0.3 * plain(
        torch.tensor([1, 2, 3, 1, 2, 3, 4, 4]), torch.tensor([3, 3, 2])
    )
    torch.testing.assert_close(ctc_loss_of(model, (features, lengths, targets, target_lengths), blend), expected)


# ----------------------------------------------------------------------------- model
def test_a_second_conv_per_stage_keeps_the_frames_and_the_one_conv_layout() -> None:
    spec, lengths = SpeechSpec(n_mels=40, vocab=7), torch.tensor([50, 33, 9])
    features = torch.randn(3, 40, 50, generator=torch.Generator().manual_seed(0))
    one = ctc_rnn(spec, 7, conv="2d", width=16, layers=1)
    two = ctc_rnn(spec, 7, conv="2d", width=16, layers=1, convs_per_stage=2)
    logits, frames = two(features, lengths)
    assert logits.shape == (3, 13, 7) and frames.tolist() == subsampled_lengths(lengths).tolist()
    # runs saved before the option existed load: the one-conv layout's names are what they were
    assert [k for k in one.state_dict() if k.startswith("convolutions")] == [
        "convolutions.0.weight",
        "convolutions.0.bias",
        "convolutions.2.weight",
        "convolutions.2.bias",
    ]
    convs = [m for m in two.convolutions if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1), (2, 2), (1, 1)]
    with pytest.raises(ConfigError, match=r"model.convs_per_stage: 2 needs conv: 2d"):
        ctc_rnn(spec, 7, conv="1d", convs_per_stage=2)
