"""Attributions: Integrated Gradients completeness, the decisive column first, tokens, heat-maps, attention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from insight_runs import modelforge_cli

from modelforge.errors import ModelforgeError
from modelforge.evaluate.explain import attention_maps, explain_frame, global_importance
from modelforge.evaluate.explain_output import explain_to_folder


def assert_complete(explanations: list[Any], tolerance: float = 0.02) -> None:
    """IG completeness: attributions sum to score − baseline score, up to a small share of it."""
    for e in explanations:
        expected = e.score - e.baseline_score
        assert abs(e.total - expected) <= tolerance * max(abs(expected), 1.0), (e.row, e.total, expected)
        assert e.delta is not None and abs(e.delta) <= tolerance * max(abs(expected), 1.0)


def test_ig_completeness_tabular_with_category(one_column_run: Any, one_column_csv: Path) -> None:
    frame = pd.read_csv(one_column_csv)
    explanations = explain_frame(one_column_run, frame, list(range(12)), method="ig", steps=64)
    assert_complete(explanations)
    assert set(explanations[0].features) == {"noise1", "noise2", "decisive", "noise3", "noise4", "color"}


def test_ig_completeness_regression_in_target_units(regressor_run: Any, diabetes_csv: Path) -> None:
    frame = pd.read_csv(diabetes_csv)
    explanations = explain_frame(regressor_run, frame, [0, 1, 2, 3], steps=64)
    assert_complete(explanations)
    predicted = regressor_run.outputs(frame.iloc[:4])
    assert np.allclose([e.predicted for e in explanations], predicted, rtol=1e-4, atol=1e-3)


def test_decisive_column_ranks_first(one_column_run: Any, one_column_csv: Path) -> None:
    frame = pd.read_csv(one_column_csv)
    assert one_column_run.metrics["accuracy"] > 0.9
    rows = list(range(100))
    for method in ("ig", "occlusion", "saliency"):
        importance = global_importance(explain_frame(one_column_run, frame, rows, method=method, steps=32))
        assert next(iter(importance)) == "decisive", (method, importance)
    per_row = explain_frame(one_column_run, frame, rows, steps=32)
    first = [e.top_features(1)[0][0] for e in per_row]
    assert first.count("decisive") >= 80


def test_text_tokens_complete_and_attention_per_layer_head(text_run: Any) -> None:
    frame = pd.DataFrame({"text": ["a gorgeous , witty , seductive movie .", "the plot is a dull mess"]})
    explanations = explain_frame(text_run, frame, [0, 1], steps=64)
    assert_complete(explanations)
    assert explanations[0].tokens == ["a", "gorgeous", ",", "witty", ",", "seductive", "movie", "."]
    assert len(explanations[0].token_scores) == 8
    import torch

    inputs = {k: torch.from_numpy(v) for k, v in text_run.preprocessor.transform_inputs(frame).items()}
    maps = attention_maps(text_run.model, inputs)
    assert len(maps) == 2  # depth 2
    assert maps[0].shape == (2, 2, 8, 8)  # rows × heads × queries × keys (trimmed to the longest row)
    assert np.allclose(maps[0].sum(axis=-1), 1.0, atol=1e-4)
    assert np.all(maps[0][1, :, :, 6:] < 1e-6)  # row 1 has 6 tokens: no attention to its padding


def test_image_heatmap_files(image_run: Any, tmp_path: Path) -> None:
    digits = np.load(Path(__file__).resolve().parents[2] / "examples" / "data" / "digits.npz")
    data = tmp_path / "few.npz"
    np.savez(data, x=digits["x"][-5:], y=digits["y"][-5:])
    folder, explanations, lines = explain_to_folder(image_run.path, data, [0, 3], "ig", tmp_path / "out")
    assert_complete(explanations)
    assert explanations[0].maps["image"].shape == (8, 8)
    for row in (0, 3):
        png = folder / f"row{row}_image.png"
        assert png.stat().st_size > 1000
        assert f"src='row{row}_image.png'" in (folder / "index.html").read_text()
    assert any("image: row0_image.png" in line for line in lines)


def test_explain_cli_prints_top_features(one_column_run: Any, one_column_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "explain"
    result = modelforge_cli(
        "explain", str(one_column_run.path), "--data", str(one_column_csv), "--rows", "0,5", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "row 0: predicted" in result.stdout and "top features: decisive" in result.stdout
    saved = json.loads((out / "attributions.json").read_text())
    assert [r["row"] for r in saved["rows"]] == [0, 5] and saved["method"] == "ig"


def test_explain_cli_bad_rows_exit_2(one_column_run: Any, one_column_csv: Path) -> None:
    result = modelforge_cli("explain", str(one_column_run.path), "--data", str(one_column_csv), "--rows", "0,x")
    assert result.returncode == 2
    assert "--rows: expected row numbers" in result.stderr and "Traceback" not in result.stderr


def test_rows_out_of_range_is_a_user_error(one_column_run: Any, one_column_csv: Path) -> None:
    with pytest.raises(ModelforgeError, match="--rows: row 9999 is out of range"):
        explain_frame(one_column_run, pd.read_csv(one_column_csv), [9999])
