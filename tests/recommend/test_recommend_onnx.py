"""A recommender exported to ONNX (`score(user, item)`, feature tables folded in) answers `predict`
with `--engine onnx` like the eager run: pair ratings and each user's top-K items."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelforge
from modelforge.export.graphs import load_onnx_recommender
from modelforge.export.recipe import export_run
from modelforge.training.recommend import load_recommender_run


@pytest.mark.parametrize(("model", "feedback"), [("mf", "explicit"), ("two_tower", "implicit")])
def test_onnx_engine_predicts_like_the_run(recommend_config: Any, model: str, feedback: str, tmp_path: Path) -> None:
    run_dir = Path(modelforge.train(recommend_config(feedback, model=model, epochs=3), tmp_path / "run").path)
    result = export_run(run_dir, "onnx")
    assert result.parity is not None and result.parity.max_abs_diff <= 1e-4, result.parity
    eager, onnx = load_recommender_run(run_dir), load_onnx_recommender(run_dir)
    pairs = pd.DataFrame({"user_id": ["u1", "u2", "u3", "nobody"], "item_id": ["i0", "i3", "i5", "i1"]})
    expected, got = eager.predict(pairs), onnx.predict(pairs)
    column = "rating" if feedback == "explicit" else "score"
    assert list(got["cold_start"]) == list(expected["cold_start"])
    np.testing.assert_allclose(got[column], expected[column], atol=1e-5)
    users = pd.DataFrame({"user_id": ["u1", "u4", "newcomer"]})
    top_expected, top_got = eager.predict(users), onnx.predict(users)
    assert list(top_got["item"]) == list(top_expected["item"])
    np.testing.assert_allclose(top_got["score"], top_expected["score"], atol=1e-5)


def test_serve_with_the_onnx_engine_answers_like_eager(recommend_config: Any, tmp_path: Path) -> None:
    from modelforge.serve.services import ModelSpec, load_recommend_service

    run_dir = Path(modelforge.train(recommend_config("explicit", epochs=3), tmp_path / "run").path)
    export_run(run_dir, "onnx")
    spec = ModelSpec.parse(f"movies={run_dir}")
    eager, onnx = load_recommend_service(spec, "torch"), load_recommend_service(spec, "onnx")
    records = [{"user_id": "u1"}, {"user_id": "u2", "item_id": "i3"}]
    wanted = [eager.validate(records, None)]
    expected, got = eager.predict_batch(wanted), onnx.predict_batch(wanted)
    assert [a["items"][0]["item"] for a in got[0][:1]] == [a["items"][0]["item"] for a in expected[0][:1]]
    assert got[0][1]["value"] == pytest.approx(expected[0][1]["value"], abs=1e-5)


def test_predict_cli_with_the_onnx_engine(recommend_config: Any, tmp_path: Path, cli) -> None:
    run_dir = Path(modelforge.train(recommend_config("explicit", epochs=2), tmp_path / "run").path)
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"user_id": ["u1", "u2", "u9"], "item_id": ["i0", "i3", "i5"]}).to_csv(rows, index=False)
    missing = cli("predict", run_dir, "--data", rows, "--engine", "onnx")
    assert missing.returncode == 2 and "model.onnx: not found" in missing.stderr
    assert cli("export", run_dir, "--format", "onnx").returncode == 0
    eager, onnx = cli("predict", run_dir, "--data", rows), cli("predict", run_dir, "--data", rows, "--engine", "onnx")
    assert onnx.returncode == 0, onnx.stderr
    expected, got = pd.read_csv(io.StringIO(eager.stdout)), pd.read_csv(io.StringIO(onnx.stdout))
    np.testing.assert_allclose(got["rating"], expected["rating"], atol=1e-5)
