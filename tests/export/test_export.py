from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from modelforge.compress.recipe import CompressOptions, compress_run
from modelforge.errors import RunError
from modelforge.export.onnx import load_onnx_predictor
from modelforge.export.parity import ExportError
from modelforge.export.recipe import export_run
from modelforge.run import load_run


@pytest.mark.parametrize("which", ["mlp_run", "cnn_run"])
def test_onnx_export_parity_and_predictor(which, request, tmp_path) -> None:
    run_dir = request.getfixturevalue(which)
    result = export_run(run_dir, "onnx")
    assert result.path == run_dir / "model.onnx" and result.parity is not None
    assert result.parity.max_abs_diff <= 1e-4 and result.parity.rows > 50
    run = load_run(run_dir)
    frame = run._prepare(run.config.data.train).iloc[:100]
    onnx_values = load_onnx_predictor(run_dir).outputs(frame)
    assert onnx_values.shape == run.outputs(frame).shape
    assert np.abs(onnx_values - run.outputs(frame)).max() < 1e-5


def test_torchscript_export_parity(mlp_run, tmp_path) -> None:
    result = export_run(mlp_run, "torchscript", tmp_path / "model.pt")
    assert result.path.exists() and result.parity is not None and result.parity.max_abs_diff <= 1e-5


def test_parity_failure_writes_nothing(mlp_run, tmp_path) -> None:
    with pytest.raises(ExportError, match="max abs diff"):
        export_run(mlp_run, "onnx", tmp_path / "strict.onnx", tolerance=1e-12)
    assert list(tmp_path.iterdir()) == []


def test_quantized_runs_are_not_exported(mlp_run, tmp_path) -> None:
    compress_run(mlp_run, tmp_path / "int8", CompressOptions(quantize="int8-dynamic"))
    with pytest.raises(ExportError, match="quantized"):
        export_run(tmp_path / "int8", "torchscript")


def test_export_and_predict_with_onnx_engine_cli(cnn_run, tmp_path, cli) -> None:
    (cnn_run / "model.onnx").unlink(missing_ok=True)
    result = cli("export", cnn_run, "--format", "onnx")
    assert result.returncode == 0, result.stderr
    assert "max abs diff" in result.stdout and (cnn_run / "model.onnx").exists()
    rows = tmp_path / "rows.npz"
    run = load_run(cnn_run)
    data = np.load(run.config.data.train)
    np.savez(rows, x=data["x"][:40], y=data["y"][:40])
    onnx_csv = cli("predict", cnn_run, "--data", rows, "--engine", "onnx")
    assert onnx_csv.returncode == 0, onnx_csv.stderr
    onnx_frame, torch_frame = pd.read_csv(io.StringIO(onnx_csv.stdout)), run.predict(rows)
    assert onnx_frame.pop("row").tolist() == list(range(1, 41))  # one numbered answer per input row
    assert (onnx_frame["prediction"] == torch_frame["prediction"]).all()
    assert np.allclose(onnx_frame.iloc[:, 1:], torch_frame.iloc[:, 1:], atol=1e-5)


def test_export_format_the_model_does_not_support(mlp_run, tmp_path, cli, assert_one_line_error) -> None:
    assert_one_line_error(cli("export", mlp_run, "--format", "hf", "--out", tmp_path / "hf"), "hf")
    assert not (tmp_path / "hf").exists()


def test_export_bad_inputs_in_process(mlp_run, tmp_path) -> None:
    with pytest.raises(RunError, match="not found"):
        export_run(tmp_path / "nope", "onnx")
    with pytest.raises(ExportError, match="unknown export format"):
        export_run(mlp_run, "tflite")
    lonely = tmp_path / "lonely"
    compress_run(mlp_run, lonely, CompressOptions(prune=0.3))
    with pytest.raises(ExportError, match=r"model\.onnx"):
        load_onnx_predictor(lonely)


def test_serve_with_onnx_engine_answers_like_the_run(cnn_run) -> None:
    from fastapi.testclient import TestClient

    from modelforge.serve.app import create_app
    from modelforge.serve.services import load_services

    export_run(cnn_run, "onnx")
    run = load_run(cnn_run)
    pixels = np.load(run.config.data.train)["x"][:12]
    with TestClient(create_app(load_services([f"digits={cnn_run}"], engine="onnx"))) as client:
        answer = client.post("/v1/models/digits/predict", json={"records": [{"x": p.tolist()} for p in pixels]})
    assert answer.status_code == 200, answer.text
    expected = run.predict(pd.DataFrame({"x": list(pixels)}))
    predictions = answer.json()["predictions"]
    assert [str(p["label"]) for p in predictions] == [str(v) for v in expected["prediction"]]
    for p, (_, row) in zip(predictions, expected.iterrows(), strict=True):
        assert p["probabilities"]["3"] == pytest.approx(row["probability_3"], abs=1e-5)
