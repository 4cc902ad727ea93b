"""`modelforge init DATA` then `modelforge train` with no edits, for every kind of input init infers;
and a model that cannot take a feature is refused in one line, listed or inferred."""

from __future__ import annotations

import json
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cli_runner import modelforge_in_process

OneLineError = Callable[[subprocess.CompletedProcess[str], str], None]
ROWS = 24
PHRASES = ["a fine film with a good plot", "dull and far too long", "great acting all round", "awful boring mess"]


def labels(n: int = ROWS) -> list[str]:
    return ["yes", "no"] * (n // 2)


def table(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(40, 9, ROWS), "colour": rng.choice(["red", "blue"], ROWS), "y": labels()})
    frame.to_csv(folder / "table.csv", index=False)
    return folder / "table.csv"


def text_table(folder: Path) -> Path:
    reviews = [f"{PHRASES[i % 4]} number {i}" for i in range(ROWS)]
    pd.DataFrame({"review": reviews, "y": labels()}).to_csv(folder / "reviews.csv", index=False)
    return folder / "reviews.csv"


def mixed_table(folder: Path) -> Path:
    reviews = [f"{PHRASES[i % 4]} number {i}" for i in range(ROWS)]
    frame = pd.DataFrame({"review": reviews, "stars": np.arange(ROWS) % 5, "y": labels()})
    frame.to_csv(folder / "mixed.csv", index=False)
    return folder / "mixed.csv"


def image_folder(folder: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (folder / "pictures" / label).mkdir(parents=True)
        for i in range(ROWS // 2):
            pixels = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / "pictures" / label / f"{i}.png")
    return folder / "pictures"


def image_arrays(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(folder / "digits.npz", x=rng.random((ROWS, 8, 8)).astype(np.float32), y=np.arange(ROWS) % 2)
    return folder / "digits.npz"


def write_clips(folder: Path, n: int, seed: int = 0) -> None:
    """n quarter-second 8 kHz mono WAVs of noise, 0.wav, 1.wav, ..."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        with wave.open(str(folder / f"{i}.wav"), "wb") as clip:
            clip.setnchannels(1)
            clip.setsampwidth(2)
            clip.setframerate(8000)
            clip.writeframes((rng.normal(0, 3000, 2000)).astype(np.int16).tobytes())


def wav_table(folder: Path) -> Path:
    """The table holds clip paths relative to its own folder."""
    write_clips(folder / "clips", ROWS)
    paths = [f"clips/{i}.wav" for i in range(ROWS)]
    pd.DataFrame({"clip": paths, "y": labels()}).to_csv(folder / "clips.csv", index=False)
    return folder / "clips.csv"


def image_table(folder: Path) -> Path:
    """The table holds image paths relative to its own folder (as datasets ship them)."""
    pictures = image_folder(folder)
    paths = sorted(p.relative_to(folder).as_posix() for p in pictures.rglob("*.png"))
    pd.DataFrame({"file": paths, "y": [Path(p).parent.name for p in paths]}).to_csv(folder / "images.csv", index=False)
    return folder / "images.csv"


def text_folder(folder: Path) -> Path:
    """A text per file in a folder per class (aclImdb's pos/ and neg/)."""
    for label, phrases in (("pos", PHRASES[::2]), ("neg", PHRASES[1::2])):
        (folder / "reviews" / label).mkdir(parents=True)
        for i in range(ROWS // 2):
            (folder / "reviews" / label / f"{i}.txt").write_text(f"{phrases[i % 2]}, take {i}", encoding="utf-8")
    return folder / "reviews"


def wav_folder(folder: Path) -> Path:
    for seed, label in enumerate(("on", "off")):
        write_clips(folder / "sounds" / label, ROWS // 2, seed)
    return folder / "sounds"


KINDS: dict[str, tuple[Callable[[Path], Path], list[str], str]] = {
    # kind: (data writer, init's extra arguments, the model init should pick)
    "table": (table, ["--target", "y"], "mlp"),
    "text": (text_table, ["--target", "y"], "lstm"),
    "text+numeric": (mixed_table, ["--target", "y"], "lstm"),
    "image folder": (image_folder, [], "cnn"),
    "image npz": (image_arrays, ["--target", "y"], "cnn"),
    "image paths": (image_table, ["--target", "y"], "cnn"),
    "wav paths": (wav_table, ["--target", "y"], "audio_cnn"),
    "wav folder": (wav_folder, [], "audio_cnn"),
    "text folder": (text_folder, [], "lstm"),
}


def init_config(data: Path, extra: list[str], folder: Path) -> Path:
    config = folder / "config.yaml"
    result = modelforge_in_process("init", str(data), *extra, "--out", str(config))
    assert result.returncode == 0, result.stderr
    return config


@pytest.mark.parametrize("kind", KINDS)
def test_init_then_train_without_edits(kind: str, tmp_path: Path) -> None:
    write, extra, model = KINDS[kind]
    config = init_config(write(tmp_path), extra, tmp_path)
    assert yaml.safe_load(config.read_text())["model"]["type"] == model
    run = tmp_path / "run"
    fast = ["--set", "train.epochs=1", "--set", "train.batch_size=8", "--no-progress"]
    result = modelforge_in_process("train", str(config), "--out", str(run), *fast)
    assert result.returncode == 0, result.stderr
    assert (run / "model.json").is_file()


def test_a_listed_feature_the_model_cannot_take_is_refused_in_one_line(
    tmp_path: Path, assert_one_line_error: OneLineError
) -> None:
    config = init_config(wav_table(tmp_path), ["--target", "y"], tmp_path)
    result = modelforge_in_process("train", str(config), "--set", "model.type=mlp", "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "features[0] (clip, audio): model mlp does not accept audio features")
    assert "models that do: audio_cnn, audio_transformer" in result.stderr and not (tmp_path / "run").exists()


def test_an_inferred_feature_the_model_cannot_take_is_refused_before_training(
    tmp_path: Path, assert_one_line_error: OneLineError
) -> None:
    data = wav_table(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": data.name, "target": "y"}, "model": {"type": "mlp"}}))
    result = modelforge_in_process("train", str(config), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "column 'clip' (inferred as audio): model mlp does not accept audio features")
    assert not (tmp_path / "run").exists()


def ratings_folder(folder: Path) -> Path:
    """A MovieLens-100k-shaped folder: u.data (tab-separated user, item, rating, time), u.user, u.item."""
    rng = np.random.default_rng(0)
    movielens = folder / "ml"
    movielens.mkdir()
    rows = {(int(u), int(i)) for u, i in rng.integers(1, 21, size=(300, 2))}
    lines = [f"{u}\t{i}\t{1 + (u * i) % 5}\t{n}" for n, (u, i) in enumerate(sorted(rows))]
    (movielens / "u.data").write_text("\n".join(lines) + "\n")
    users = [f"{u}|{20 + u}|{'MF'[u % 2]}|other|0{u:04d}" for u in range(1, 21)]
    (movielens / "u.user").write_text("\n".join(users) + "\n")
    items = [
        f"{i}|Film {i} (1990)|01-Jan-1990||url|" + "|".join("1" if g == i % 19 else "0" for g in range(19))
        for i in range(1, 21)
    ]
    (movielens / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    return movielens


def ratings_table(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    pairs = sorted({(int(u), int(i)) for u, i in rng.integers(1, 21, size=(300, 2))})
    frame = pd.DataFrame(pairs, columns=["user_id", "movie_id"])
    frame["stars"] = (frame.user_id * frame.movie_id) % 5 + 1
    frame.to_csv(folder / "ratings.csv", index=False)
    return folder / "ratings.csv"


def corpus(folder: Path) -> Path:
    (folder / "corpus.txt").write_text("to be or not to be, that is the question.\n" * 100, encoding="utf-8")
    return folder / "corpus.txt"


def chapters(folder: Path) -> Path:
    """A corpus split over files: a folder of .txt files and nothing else."""
    (folder / "book").mkdir()
    for i in range(3):
        (folder / "book" / f"chapter{i}.txt").write_text(f"chapter {i}. to be or not to be.\n" * 40, encoding="utf-8")
    return folder / "book"


@pytest.mark.parametrize(
    ("make", "task_option", "overrides"),
    [
        (corpus, [], ["train.max_steps=5", "train.eval_every=5", "train.eval_batches=1"]),
        (chapters, [], ["train.max_steps=5", "train.eval_every=5", "train.eval_batches=1"]),
        (ratings_folder, [], ["train.epochs=1"]),
        (ratings_table, ["--task", "recommendation"], ["train.epochs=1"]),
        (ratings_table, [], ["train.epochs=1"]),
    ],
    ids=["text-file", "text-folder", "movielens-folder", "ratings-table", "ratings-table-recognized"],
)
def test_tasks_with_their_own_starter_train_with_no_edits(
    make: Callable[[Path], Path], task_option: list[str], overrides: list[str], tmp_path: Path
) -> None:
    data = make(tmp_path)
    config = tmp_path / "config.yaml"
    made = modelforge_in_process("init", str(data), *task_option, "--out", str(config))
    assert made.returncode == 0, made.stderr
    sets = [part for key in overrides for part in ("--set", key)]
    trained = modelforge_in_process("train", str(config), "--out", str(tmp_path / "run"), "--no-progress", *sets)
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "run" / "model.json").is_file()


def test_the_budget_is_sized_to_the_data() -> None:
    """More rows, fewer epochs and bigger batches; image and audio sets (costly passes) fewer epochs than tables."""
    from modelforge.init import train_budget

    sizes = [24, 178, 569, 1_797, 8_000, 32_000, 1_000_000]
    for inputs in ({"numeric", "category"}, {"image"}, {"audio"}, {"text"}):
        budgets = [train_budget(rows, inputs) for rows in sizes]
        epochs = [budget["epochs"] for budget in budgets]
        assert epochs == sorted(epochs, reverse=True) and epochs[0] > epochs[-1], (inputs, epochs)
        batches = [budget["batch_size"] for budget in budgets]
        assert batches == sorted(batches) and batches[0] < batches[-1], (inputs, batches)
        for budget in budgets:  # a plateau ends the run, but not before the one-cycle schedule has annealed a while
            assert budget["schedule"] == "onecycle" and budget["early_stopping"]["metric"] == "valid_loss"
            assert 3 <= budget["early_stopping"]["patience"] < budget["epochs"]
            assert not {"precision", "threads"} & set(budget)  # those default to auto
    small_table, big_table = train_budget(569, {"numeric"}), train_budget(32_000, {"numeric"})
    assert small_table["epochs"] >= 50 > big_table["epochs"]  # a small set still gets many passes
    images = train_budget(8_000, {"image"})
    assert images["epochs"] <= 20 and images["batch_size"] >= 64  # 8,000 28×28 images: about a minute, not 300 s
    assert train_budget(8_000, {"image"})["epochs"] < train_budget(8_000, {"numeric"})["epochs"]


def test_init_writes_the_sized_budget_and_it_trains_as_written(tmp_path: Path) -> None:
    from modelforge.init import train_budget

    config = init_config(table(tmp_path), ["--target", "y"], tmp_path)
    written = yaml.safe_load(config.read_text())["train"]
    assert written == train_budget(ROWS, {"numeric", "category"})
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config), "--out", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert 1 <= len(epochs) <= written["epochs"] and (run / "model.json").is_file()


def test_a_rare_class_gets_a_tuned_decision_and_it_trains_as_written(tmp_path: Path) -> None:
    """A two-class target whose rarer class is under 20 % of the rows: init writes `decision: {optimize: f1}`
    naming that class (whatever its sorted place) and `calibrate: temperature`; balanced targets get neither."""
    rng = np.random.default_rng(0)
    rows = 400
    score = rng.normal(size=rows)
    frame = pd.DataFrame({"score": score, "noise": rng.normal(size=rows), "y": np.where(score > 1.4, "alarm", "quiet")})
    frame.to_csv(tmp_path / "skewed.csv", index=False)
    config_path = init_config(tmp_path / "skewed.csv", ["--target", "y"], tmp_path)
    text = config_path.read_text()
    config = yaml.safe_load(text)
    assert config["decision"] == {"optimize": "f1", "positive": "alarm"} and config["calibrate"] == "temperature"
    assert "'alarm' is the rarer class" in text and "max_flag_rate" in text  # the comment names the other rules
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config_path), "--out", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr
    decision = json.loads((run / "decision.json").read_text())
    assert decision["positive"] == "alarm" and decision["objective"] == {"optimize": "f1"}
    (tmp_path / "balanced").mkdir()
    balanced = yaml.safe_load(
        init_config(table(tmp_path / "balanced"), ["--target", "y"], tmp_path / "balanced").read_text()
    )
    assert "decision" not in balanced and "calibrate" not in balanced


def test_a_column_naming_each_rows_split_is_the_split_not_a_feature(tmp_path: Path) -> None:
    """A column whose every value names a part (train / test, any case; Hugging Face's "validation")
    becomes `data.split.column`: its test rows are the run's test rows, validation is drawn only where
    it names none, and it is not an input."""
    rng = np.random.default_rng(0)
    parts = ["train"] * 16 + ["Test"] * 8
    frame = pd.DataFrame({"age": rng.normal(40, 9, ROWS), "part": parts, "y": labels()})
    frame.to_csv(tmp_path / "published.csv", index=False)
    config_path = init_config(tmp_path / "published.csv", ["--target", "y"], tmp_path)
    config = yaml.safe_load(config_path.read_text())
    assert config["data"]["split"] == {"column": "part", "valid": 0.1, "test": 0.0, "stratify": True}
    assert [f["name"] for f in config["features"]] == ["age"]
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config_path), "--out", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr
    support = sum(c["support"] for c in json.loads((run / "eval.json").read_text())["per_class"].values())
    assert support == 8  # the rows the column marks test, not a fresh 20 %

    (tmp_path / "hf").mkdir()
    frame.assign(part=["train"] * 12 + ["validation"] * 6 + ["test"] * 6).to_csv(tmp_path / "hf" / "t.csv", index=False)
    split = yaml.safe_load(init_config(tmp_path / "hf" / "t.csv", ["--target", "y"], tmp_path / "hf").read_text())
    assert split["data"]["split"] == {"column": "part", "valid": 0.0, "test": 0.0, "stratify": True}
    result = modelforge_in_process("train", str(tmp_path / "hf" / "config.yaml"), "--out", str(tmp_path / "hf" / "run"))
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "hf" / "run" / "metrics.jsonl").read_text().splitlines()) >= 1  # validated on 6 rows
    (tmp_path / "plain").mkdir()  # a column of other words, or one part only, is an ordinary feature
    frame.assign(part=["train"] * 23 + ["holdout"]).to_csv(tmp_path / "plain" / "t.csv", index=False)
    plain = yaml.safe_load(init_config(tmp_path / "plain" / "t.csv", ["--target", "y"], tmp_path / "plain").read_text())
    assert "column" not in plain["data"]["split"] and "part" in [f["name"] for f in plain["features"]]


def test_columns_that_teach_nothing_are_left_out_and_say_why(tmp_path: Path) -> None:
    """A column with one value, a saved index, a column of mostly unique short strings (an identifier: ISLP
    Auto's car names took its test r² from 0.87 to 0.66) and a second text column go to `data.drop`, each with its
    reason in a comment; a few multi-word values repeated over many rows (ISLP Wage's "2. HS Grad") are a
    category, not text. The config trains as written."""
    rng = np.random.default_rng(0)
    rows = 120
    grades = ["1. < HS Grad", "2. HS Grad", "3. Some College", "4. College Grad"]
    frame = pd.DataFrame(
        {
            "education": rng.choice(grades, rows),
            "region": "2. Middle Atlantic",
            "serial": [f"c{i:04d}" for i in range(rows)],
            "title": [f"{PHRASES[i % 4]} {i}" for i in range(rows)],
            "review": [f"{PHRASES[i % 4]} and then {PHRASES[(i * 7) % 4]} again, take {i}" for i in range(rows)],
            "y": labels(rows),
        }
    )
    frame.to_csv(tmp_path / "people.csv")  # with pandas' index: a column "Unnamed: 0" counting the rows
    config_path = init_config(tmp_path / "people.csv", ["--target", "y"], tmp_path)
    text = config_path.read_text()
    config = yaml.safe_load(text)
    assert {f["name"]: f["type"] for f in config["features"]} == {"education": "category", "review": "text"}
    assert config["data"]["drop"] == ["Unnamed: 0", "region", "serial", "title"]
    assert "# data.drop: Unnamed: 0: a row number (a saved index: the rows counted one by one)" in text
    assert "# data.drop: region: one value in every row ('2. Middle Atlantic')" in text
    assert f"# data.drop: serial: an identifier ({rows} different values in {rows} rows)" in text
    assert "# data.drop: title: a second text column (a model reads one; kept: review)" in text
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config_path), "--out", str(run), "--set", "train.epochs=1")
    assert result.returncode == 0, result.stderr
    fitted = json.loads((run / "preprocessing.json").read_text())["features"]
    assert [(feature["name"], feature["type"]) for feature in fitted] == [("education", "category"), ("review", "text")]


def test_numbers_written_for_people_and_dates_in_a_table_train_and_predict_without_edits(tmp_path: Path) -> None:
    """Prices as "$1,234.50", shares as "12.5%" and ages with "?" for unknown are numeric features; a column
    of dates, most of them different, is left out with that reason. init, train and predict need no edits."""
    rng = np.random.default_rng(1)
    rows = 200
    income = rng.normal(50000, 15000, rows)
    share = rng.uniform(0, 100, rows)
    age = rng.integers(18, 80, rows).astype(object)
    age[::25] = "?"
    frame = pd.DataFrame(
        {
            "income": [f"${v:,.2f}" for v in income],
            "share": [f"{v:.1f}%" for v in share],
            "age": age,
            "joined": (pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), unit="D")).strftime(
                "%Y-%m-%d"
            ),
            "y": np.where(income / 50000 + share / 50 > 2.0, "buy", "skip"),
        }
    )
    frame.to_csv(tmp_path / "shop.csv", index=False)
    config_path = init_config(tmp_path / "shop.csv", ["--target", "y"], tmp_path)
    text = config_path.read_text()
    config = yaml.safe_load(text)
    assert {f["name"]: f["type"] for f in config["features"]} == {
        "income": "numeric",
        "share": "numeric",
        "age": "numeric",
    }
    assert config["data"]["drop"] == ["joined"] and "# data.drop: joined: dates (" in text
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config_path), "--out", str(run), "--set", "train.epochs=30")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "eval.json").read_text())["accuracy"] >= 0.8  # the numbers were read, not memorized
    predictions = tmp_path / "predictions.csv"
    result = modelforge_in_process("predict", str(run), "--data", str(tmp_path / "shop.csv"), "--out", str(predictions))
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(predictions)) == rows


def test_a_table_of_interactions_is_recommendation_and_target_names_its_rating(tmp_path: Path) -> None:
    """Columns a user and an item go by (customer_id, product), a rating (`--target`, else by name) and a time
    (ts) and nothing else: init picks recommendation with no --task; a table with other columns beside them
    stays a table task; --target on a MovieLens folder is refused in one line."""
    from modelforge.tasks import task_for_file

    frame = pd.read_csv(ratings_table(tmp_path)).rename(columns={"user_id": "customer_id", "movie_id": "product"})
    frame["ts"] = np.arange(len(frame))
    frame.rename(columns={"stars": "grade"}).to_csv(tmp_path / "shop.csv", sep=";", index=False)
    config = yaml.safe_load(init_config(tmp_path / "shop.csv", ["--target", "grade"], tmp_path).read_text())
    assert config["task"] == "recommendation"
    assert config["recommend"] == {
        "user": "customer_id", "item": "product", "rating": "grade", "time": "ts", "feedback": "explicit"
    }  # fmt: skip
    assert task_for_file(tmp_path / "shop.csv") is None  # "grade" is no rating name: a fourth column of its own
    frame.assign(region="north").to_csv(tmp_path / "wide.csv", index=False)
    assert task_for_file(tmp_path / "wide.csv", "stars") is None
    (tmp_path / "ml").mkdir()
    result = modelforge_in_process("init", str(ratings_folder(tmp_path / "ml")), "--target", "rating")
    assert result.returncode == 2 and "MovieLens folder, whose ratings are its own" in result.stderr


def test_a_semicolon_separated_table_with_decimal_commas_reads_as_numbers(tmp_path: Path) -> None:
    """Spreadsheets in locales with a decimal comma write `;` between fields and "51,26" for numbers."""
    rng = np.random.default_rng(0)
    price = rng.normal(50, 10, ROWS)
    lines = ["Prix unitaire;Température;étiquette"] + [
        f"{p:.2f};{t:.1f};{label}".replace(".", ",")
        for p, t, label in zip(price, rng.normal(size=ROWS), labels(), strict=True)
    ]
    (tmp_path / "euro.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config_path = init_config(tmp_path / "euro.csv", ["--target", "étiquette"], tmp_path)
    text = config_path.read_text(encoding="utf-8")
    assert "- name: Température" in text  # written as it is, not as an escape
    config = yaml.safe_load(text)
    assert {f["name"]: f["type"] for f in config["features"]} == {"Prix unitaire": "numeric", "Température": "numeric"}
    result = modelforge_in_process("train", str(config_path), "--out", str(tmp_path / "run"), "--set", "train.epochs=1")
    assert result.returncode == 0, result.stderr
    scale = json.loads((tmp_path / "run" / "preprocessing.json").read_text())["features"][0]["state"]["shift_"]
    assert 40 < scale < 60  # the prices' mean: "51,26" read as 51.26


def test_an_image_that_cannot_be_read_is_one_line_or_skipped_when_asked(
    tmp_path: Path, assert_one_line_error: OneLineError
) -> None:
    """A corrupt file in an image folder stops training with one line that names it and the way out;
    with `data.bad_rows: skip` its row is left out with a warning and the run trains on the others."""
    pictures = image_folder(tmp_path)
    (pictures / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    config = init_config(pictures, [], tmp_path)
    result = modelforge_in_process("train", str(config), "--out", str(tmp_path / "run"), "--set", "train.epochs=1")
    assert_one_line_error(result, "broken.png (UnidentifiedImageError); fix or remove the file, or set data.bad_rows")
    run = tmp_path / "skipped"
    sets = ["--set", "train.epochs=1", "--set", "data.bad_rows=skip"]
    result = modelforge_in_process("train", str(config), "--out", str(run), *sets)
    assert result.returncode == 0, result.stderr
    assert f"skipped 1 of {ROWS + 1} rows whose image could not be read: {pictures / 'dog' / 'broken.png'}" in (
        result.stderr
    )
    assert (run / "model.json").is_file()


def test_a_table_whose_target_is_free_text_is_seq2seq_and_labels_stay_classification(tmp_path: Path) -> None:
    """One text column beside a target of sentences, mostly different (a translation table): seq2seq with no
    --task. Targets of labels (few values, or one word each, or numbers) keep the table tasks."""
    from modelforge.tasks import task_for_file

    words = ["red", "green", "blue", "big", "small", "old", "new", "cat", "dog", "house"]
    rng = np.random.default_rng(0)
    english = [" ".join(rng.choice(words, 4)) for _ in range(60)]
    frame = pd.DataFrame(
        {"english": english, "pig_latin": [" ".join(w[1:] + w[0] + "ay" for w in s.split()) for s in english]}
    )
    frame.to_csv(tmp_path / "pairs.tsv", sep="\t", index=False)
    assert task_for_file(tmp_path / "pairs.tsv", "pig_latin") == "seq2seq"
    config = yaml.safe_load(init_config(tmp_path / "pairs.tsv", ["--target", "pig_latin"], tmp_path).read_text())
    assert config["task"] == "seq2seq" and config["data"]["source"] == "english"
    frame.assign(intent=[f"intent_{i}" for i in range(60)], score=rng.normal(size=60)).to_csv(tmp_path / "labels.csv")
    labelled = pd.read_csv(tmp_path / "labels.csv")[["english", "intent"]]
    labelled.to_csv(tmp_path / "intents.csv", index=False)
    assert task_for_file(tmp_path / "intents.csv", "intent") is None  # one word a label
    labelled.assign(intent=rng.normal(size=60)).to_csv(tmp_path / "amounts.csv", index=False)
    assert task_for_file(tmp_path / "amounts.csv", "intent") is None  # numbers
    assert task_for_file(tmp_path / "labels.csv", "pig_latin") is None  # more than one input column


def write_idx(path: Path, values: np.ndarray) -> None:
    """MNIST's IDX format: 0 0, type 0x08 (unsigned bytes), rank, big-endian sizes, the values."""
    import gzip

    header = bytes([0, 0, 0x08, values.ndim]) + np.array(values.shape, dtype=">i4").tobytes()
    raw = header + values.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def test_a_folder_of_idx_files_is_images_with_their_published_test_split(
    tmp_path: Path, assert_one_line_error: OneLineError
) -> None:
    """MNIST's layout (Fashion-MNIST's as Debian ships it): train-/t10k- images and labels, gzipped or not.
    init reads a row per image and the files' train / test as data.split.column; it trains as written."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion"
    folder.mkdir()
    for stem, rows, suffix in (("train", 40, ".gz"), ("t10k", 12, "")):
        labels_ = np.arange(rows) % 2
        pixels = (rng.random((rows, 8, 8)) * 60 + labels_[:, None, None] * 150).astype(np.uint8)
        write_idx(folder / f"{stem}-images-idx3-ubyte{suffix}", pixels)
        write_idx(folder / f"{stem}-labels-idx1-ubyte{suffix}", labels_)
    config_path = init_config(folder, [], tmp_path)
    config = yaml.safe_load(config_path.read_text())
    assert config["data"]["split"]["column"] == "split" and config["features"] == [{"name": "image", "type": "image"}]
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config_path), "--out", str(run), "--set", "train.epochs=3")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "eval.json").read_text())["n"] == 12  # the t10k files are the test rows
    (folder / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 12, 1, 0]))  # 2 of 12 labels
    result = modelforge_in_process("init", str(folder))
    assert_one_line_error(result, "the IDX header says shape (12,) but the file holds 2 bytes of values")


def test_compressed_tables_read_as_their_text(tmp_path: Path, assert_one_line_error: OneLineError) -> None:
    """`.csv.gz` (and .bz2, .xz): init, train and predict read them as the table they hold; a torn
    archive is one line."""
    import bz2
    import gzip
    import lzma

    plain = table(tmp_path)
    (tmp_path / "table.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    (tmp_path / "table.csv.xz").write_bytes(lzma.compress(plain.read_bytes()))
    (tmp_path / "table.csv.bz2").write_bytes(bz2.compress(plain.read_bytes()))
    (tmp_path / "bzh.csv").write_text("BZh,y\n" + "\n".join(f"{i},{'ab'[i % 2]}" for i in range(ROWS)) + "\n")
    (tmp_path / "bzh").mkdir()  # a plain text whose first bytes happen to be bzip2's "BZh" stays text
    assert yaml.safe_load(init_config(tmp_path / "bzh.csv", ["--target", "y"], tmp_path / "bzh").read_text())[
        "features"
    ]
    config = init_config(tmp_path / "table.csv.gz", ["--target", "y"], tmp_path)
    assert [f["name"] for f in yaml.safe_load(config.read_text())["features"]] == ["age", "colour"]
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config), "--out", str(run), "--set", "train.epochs=1")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "predictions.csv"
    for name in ("table.csv.xz", "table.csv.bz2"):
        result = modelforge_in_process("predict", str(run), "--data", str(tmp_path / name), "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert len(pd.read_csv(out)) == ROWS
        out.unlink()
    (tmp_path / "torn.csv.gz").write_bytes(gzip.compress(plain.read_bytes())[:40])
    result = modelforge_in_process("init", str(tmp_path / "torn.csv.gz"), "--target", "y")
    assert_one_line_error(result, "torn.csv.gz: cannot decompress")


def test_a_target_of_many_whole_numbers_gets_a_note_on_how_it_was_read(tmp_path: Path) -> None:
    """Beside images, 62 integer labels are class ids (EMNIST); in a table, 80 are a quantity. Either way the
    config says which reading init took and the --task for the other."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "letters.npz", x=rng.random((620, 8, 8)).astype(np.float32), y=np.arange(620) % 62)
    text = init_config(tmp_path / "letters.npz", ["--target", "y"], tmp_path).read_text()
    assert yaml.safe_load(text)["task"] == "classification"
    assert "# task: classification: the target's 62 whole-number values read as class ids; --task regression" in text
    pd.DataFrame({"x": rng.normal(size=400), "count": np.arange(400) % 80}).to_csv(tmp_path / "counts.csv", index=False)
    (tmp_path / "t").mkdir()
    text = init_config(tmp_path / "counts.csv", ["--target", "count"], tmp_path / "t").read_text()
    assert yaml.safe_load(text)["task"] == "regression" and "read as a quantity; --task classification if not" in text


@pytest.mark.parametrize("orient", ["records", "wrapped", "columns", "lines"])
def test_a_json_table_in_any_usual_shape_trains(orient: str, tmp_path: Path) -> None:
    """A .json file holding an array of records, an object with one such array, columns as pandas writes
    them by default, or JSON Lines: the same table."""
    frame = pd.read_csv(table(tmp_path))
    path = tmp_path / "table.json"
    records = frame.to_dict(orient="records")
    written = {
        "records": json.dumps(records, indent=2),
        "wrapped": json.dumps({"count": len(records), "data": records}),
        "columns": frame.to_json(),
        "lines": frame.to_json(orient="records", lines=True),
    }
    path.write_text(written[orient])
    config = init_config(path, ["--target", "y"], tmp_path)
    assert [f["name"] for f in yaml.safe_load(config.read_text())["features"]] == ["age", "colour"]
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config), "--out", str(run), "--set", "train.epochs=1")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "eval.json").read_text())["n"] > 0


def test_a_table_with_nothing_to_learn_from_is_one_line(tmp_path: Path, assert_one_line_error: OneLineError) -> None:
    pd.DataFrame({"site": ["north"] * 60, "y": labels(60)}).to_csv(tmp_path / "flat.csv", index=False)
    result = modelforge_in_process("init", str(tmp_path / "flat.csv"), "--target", "y")
    assert_one_line_error(
        result, "no column besides the target 'y' to learn from (site: one value in every row ('north'))"
    )


def test_a_target_of_labels_joined_by_a_bar_is_multilabel_and_trains_from_the_command_line(tmp_path: Path) -> None:
    """ "news|sport" in a tenth of the rows or more: init writes task multilabel; `train` prints its summary
    (it raised on the multi-label decision's missing `threshold` before) and `predict` gives label sets."""
    rng = np.random.default_rng(0)
    topics = {"news": ["election", "vote"], "sport": ["match", "goal"], "tech": ["chip", "robot"]}
    rows = []
    for _ in range(120):
        chosen = sorted(set(rng.choice(list(topics), 2)))
        words = [word for topic in chosen for word in topics[topic]] + ["today", "report"]
        rows.append((" ".join(rng.permutation(words)), "|".join(chosen)))
    pd.DataFrame(rows, columns=["text", "tags"]).to_csv(tmp_path / "tags.csv", index=False)
    config = init_config(tmp_path / "tags.csv", ["--target", "tags"], tmp_path)
    assert yaml.safe_load(config.read_text())["task"] == "multilabel"
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config), "--out", str(run), "--set", "train.epochs=2")
    assert result.returncode == 0, result.stderr
    assert "micro_f1" in result.stdout and f"run: {run}" in result.stdout
    out = tmp_path / "predictions.csv"
    result = modelforge_in_process("predict", str(run), "--data", str(tmp_path / "tags.csv"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {"probability_news", "probability_sport", "probability_tech"} <= set(pd.read_csv(out).columns)


def test_a_utf16_table_reads_and_latin1_is_one_line(tmp_path: Path, assert_one_line_error: OneLineError) -> None:
    """Spreadsheets save "Unicode text" as UTF-16 with a byte-order mark: read as such. Bytes that are
    neither (Latin-1's é) are refused in one line naming the byte and line."""
    plain = table(tmp_path).read_text(encoding="utf-8")
    (tmp_path / "wide.csv").write_bytes(plain.replace("\n", "\r\n").encode("utf-16"))
    config = yaml.safe_load(init_config(tmp_path / "wide.csv", ["--target", "y"], tmp_path).read_text())
    assert [f["name"] for f in config["features"]] == ["age", "colour"]
    (tmp_path / "latin.csv").write_bytes("age,y\n1,café\n2,no\n".encode("latin-1"))
    result = modelforge_in_process("init", str(tmp_path / "latin.csv"), "--target", "y")
    assert_one_line_error(result, "latin.csv: not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8")


def test_an_npz_as_keras_and_others_write_it_trains_with_no_target_given(tmp_path: Path) -> None:
    """Keras' mnist.npz (x_train, y_train, x_test, y_test): its test arrays are the run's test rows; X / Y
    (or images / labels) name x and y; the target defaults to y."""
    rng = np.random.default_rng(0)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 2
        return (rng.random((n, 8, 8)) * 60 + y[:, None, None] * 150).astype(np.uint8), y

    (x_train, y_train), (x_test, y_test) = images(40), images(10)
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    config_path = init_config(tmp_path / "mnist.npz", [], tmp_path)
    config = yaml.safe_load(config_path.read_text())
    assert config["data"]["target"] == "y" and config["data"]["split"]["column"] == "split"
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config_path), "--out", str(run), "--set", "train.epochs=2")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "eval.json").read_text())["n"] == 10
    np.savez(tmp_path / "upper.npz", X=x_train.reshape(40, -1).astype(np.float32), Y=y_train)
    (tmp_path / "u").mkdir()
    upper = yaml.safe_load(init_config(tmp_path / "upper.npz", [], tmp_path / "u").read_text())
    assert upper["data"]["target"] == "y" and len(upper["features"]) == 64
