import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modelforge.config import load_config
from modelforge.data.augment import image_augmenter
from modelforge.data.features import CategoryEncoder, NumericEncoder, TextEncoder
from modelforge.data.preprocess import Preprocessor, fit_preprocessor, infer_feature, infer_task
from modelforge.data.readers import read_data, read_data_with_rows
from modelforge.data.split import split_indices
from modelforge.errors import DataError, NotFittedError


def test_ragged_csv_rows_are_rejected_naming_the_first_line_or_skipped_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,y\n1,2,x\n3,4,5,6\n\n7,8,z\n9\n")
    with pytest.raises(DataError, match=r"ragged\.csv: line 3: 4 fields, expected 3 \(2 of 4 rows .*bad_rows: skip"):
        read_data(path)
    with pytest.warns(UserWarning, match=r"ragged\.csv: skipped 2 of 4 rows .*: rows 2, 4$"):
        frame, rows = read_data_with_rows(path, bad_rows="skip")
    assert frame["a"].tolist() == [1, 7] and rows == [1, 3]


def test_jsonl_lines_that_are_not_objects(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n[1]\n\n{"a": 2}\nnot json\n')
    with pytest.raises(DataError, match=r"rows\.jsonl: line 2: not a JSON object \(2 of 4 rows"):
        read_data(path)
    with pytest.warns(UserWarning, match="skipped 2 of 4 rows"):
        frame, rows = read_data_with_rows(path, bad_rows="skip")
    assert frame["a"].tolist() == [1, 2] and rows == [1, 3]


def test_bad_npz_files_are_one_line_data_errors_that_never_suggest_pickles(tmp_path: Path) -> None:
    np.savez(tmp_path / "scalar.npz", x=np.zeros((3, 2)), y=np.array(5))
    np.savez(tmp_path / "objects.npz", x=np.array([1, "a", None], dtype=object))
    (tmp_path / "garbage.npz").write_bytes(b"garbage" * 10)
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04" + b"garbage" * 10)
    np.save(tmp_path / "bare.npy", np.zeros(3))
    (tmp_path / "bare.npy").rename(tmp_path / "bare.npz")
    expected = {
        "scalar": "array 'y' is a single value (shape ())",
        "objects": "holds object arrays (pickles), which modelforge never loads",
        "garbage": "not an .npz archive of arrays",
        "torn": "not an .npz archive of arrays",
        "bare": "not an .npz archive of arrays",
    }
    for name, message in expected.items():
        with pytest.raises(DataError) as caught:
            read_data(tmp_path / f"{name}.npz")
        assert message in str(caught.value) and "allow_pickle" not in str(caught.value), name


def test_text_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "latin1.csv").write_bytes("a,y\n1,x\n2,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: not UTF-8 text \(byte 0xe9 on line 3\)"):
        read_data(tmp_path / "latin1.csv")


def test_readers_agree_across_csv_parquet_jsonl(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5], "c": ["a", "b"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    for name in ("t.csv", "t.parquet", "t.jsonl"):
        pd.testing.assert_frame_equal(read_data(tmp_path / name), frame)


def test_npz_images_and_image_folders(tmp_path: Path, image_folder: Path) -> None:
    np.savez(tmp_path / "a.npz", x=np.zeros((3, 4, 4)), y=np.array([0, 1, 0]))
    frame = read_data(tmp_path / "a.npz")
    assert list(frame.columns) == ["x", "y"] and frame["x"].iloc[0].shape == (4, 4)
    assert infer_feature("x", frame["x"]).type == "image"
    folder = read_data(image_folder)
    assert sorted(folder["label"].unique()) == ["bottom", "top"] and len(folder) == 40


def test_undecodable_image_names_the_file(tmp_path: Path, image_folder: Path) -> None:
    (image_folder / "top" / "broken.png").write_bytes(b"not an image")
    frame = read_data(image_folder)
    config = load_config({"data": {"train": str(image_folder), "target": "label"}})
    with pytest.raises(DataError, match=r"cannot decode image .*broken.png"):
        fit_preprocessor(config, frame).transform_inputs(frame)


def test_numeric_encoder_imputes_scales_and_clips() -> None:
    series = pd.Series([1.0, 2.0, np.nan, 3.0, 100.0])
    encoder = NumericEncoder("v", impute="median", clip_outliers=1.5).fit(series)
    values = encoder.transform(series)
    assert not np.isnan(values).any() and values.max() == pytest.approx(1.5)
    with pytest.raises(DataError, match="column 'v': non-numeric value 'abc'"):
        encoder.transform(pd.Series([1.0, "abc"]))
    with pytest.raises(NotFittedError):
        NumericEncoder("w").transform(series)


def test_category_and_text_encoders_send_unseen_values_to_unknown() -> None:
    category = CategoryEncoder("c").fit(pd.Series(["a", "b", "a"]))
    assert category.transform(pd.Series(["b", "zzz", None])).tolist() == [2, 0, 0]
    text = TextEncoder("t", max_length=4).fit(pd.Series(["the cat sat", "the dog"]))
    ids = text.transform(pd.Series(["The cat flew away home"]))
    assert ids.shape == (1, 4) and ids[0, 2] == 1 and ids[0, 0] == text.vocabulary_.index("the")


def test_preprocessing_round_trips_through_json(mixed_csv: Path) -> None:
    frame = read_data(mixed_csv)
    config = load_config({"data": {"train": str(mixed_csv), "target": "label"}})
    fitted = fit_preprocessor(config, frame)
    kinds = [e.kind for e in fitted.encoders]
    assert kinds == ["numeric", "category", "text"]
    restored = Preprocessor.from_json(json.loads(json.dumps(fitted.to_json())))
    for key, value in fitted.transform_inputs(frame).items():
        np.testing.assert_array_equal(restored.transform_inputs(frame)[key], value)
    np.testing.assert_array_equal(restored.transform_target(frame), fitted.transform_target(frame))


def test_missing_input_column_at_predict_is_named(mixed_csv: Path) -> None:
    frame = read_data(mixed_csv)
    fitted = fit_preprocessor(load_config({"data": {"train": str(mixed_csv), "target": "label"}}), frame)
    with pytest.raises(DataError, match="input column 'color' is missing"):
        fitted.transform_inputs(frame.drop(columns="color"))


def test_task_inference() -> None:
    assert infer_task(pd.Series(["a", "b"])) == "classification"
    assert infer_task(pd.Series([0, 1, 2, 1])) == "classification"
    assert infer_task(pd.Series(np.linspace(0, 1, 100))) == "regression"
    class_ids = pd.Series(np.arange(620) % 62)  # EMNIST's 62 classes: a quantity in a table, class ids beside images
    assert infer_task(class_ids) == "regression" and infer_task(class_ids, media=True) == "classification"
    assert infer_task(pd.Series(np.linspace(0, 1, 100)), media=True) == "regression"


def test_stratified_split_keeps_class_shares_and_is_seeded() -> None:
    labels = np.array([0] * 80 + [1] * 20)
    train, valid, test = split_indices(100, 0.1, 0.2, seed=3, labels=labels)
    assert len(set(train) | set(valid) | set(test)) == 100
    assert (labels[test] == 1).sum() == 4 and (labels[valid] == 1).sum() == 2
    again = split_indices(100, 0.1, 0.2, seed=3, labels=labels)
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again, strict=True))


def test_augmentation_keeps_shape_and_changes_pixels() -> None:
    import torch

    torch.manual_seed(0)
    images = torch.rand(8, 1, 10, 10)
    augment = image_augmenter(crop_padding=2, hflip=True, rotate=15)
    assert augment is not None
    out = augment(images)
    assert out.shape == images.shape and not torch.allclose(out, images)
    assert image_augmenter() is None


def test_length_buckets_are_a_seeded_permutation_with_less_padding() -> None:
    from modelforge.data.split import batch_order

    lengths = torch.randint(1, 60, (5_000,), generator=torch.Generator().manual_seed(0))
    bucketed = batch_order(5_000, True, seed=3, epoch=2, lengths=lengths, batch_size=32)
    assert torch.equal(bucketed.sort().values, torch.arange(5_000))
    assert torch.equal(bucketed, batch_order(5_000, True, seed=3, epoch=2, lengths=lengths, batch_size=32))
    assert not torch.equal(bucketed, batch_order(5_000, True, seed=3, epoch=3, lengths=lengths, batch_size=32))

    def padded(order: torch.Tensor) -> int:
        return sum(int(lengths[batch].max()) * len(batch) for batch in order.split(32))

    assert padded(bucketed) < 0.6 * padded(batch_order(5_000, True, seed=3, epoch=2))


WRITTEN = [
    "$55,183.76",
    "4.8 %",
    "- $3",
    "12",
    "1,5",
    "?",
    "€ 1200",
    "1 2",
    " 7 ",
    None,
    "abc",
    "-$-3",
    "1e3",
    "N/A",
    "-",
]


def test_numbers_written_for_people_read_as_numbers_and_the_bundle_reads_them_alike() -> None:
    """Currency signs, thousands commas and percent signs are read; "?", "N/A", "-" are missing; "1,5" and
    "1 2" are not numbers (an error in `_numeric_values`). The torch-free bundle predictor agrees value by value."""
    from modelforge.data.features import _numeric_values, numbers
    from modelforge.export.bundle_predictor import written_number

    read = numbers(pd.Series(WRITTEN, dtype=object)).tolist()
    expected = [55183.76, 4.8, -3.0, 12.0, None, None, 1200.0, None, 7.0, None, None, None, 1000.0, None, None]
    assert [None if np.isnan(v) else v for v in read] == expected
    bundle = [written_number(v) for v in WRITTEN]
    unreadable = [i for i, v in enumerate(bundle) if v is None]
    assert unreadable == [4, 7, 10, 11]  # "1,5", "1 2", "abc", "-$-3": the bundle refuses what train refuses
    assert all(
        np.isnan(b) == np.isnan(r) and (np.isnan(b) or b == r)
        for b, r in zip(bundle, read, strict=True)
        if b is not None
    )
    with pytest.raises(DataError, match=r"column 'x': non-numeric value '1,5' at row\(s\) \[5, 8, 11, 12\];"):
        _numeric_values(pd.Series(WRITTEN, dtype=object), "x")
