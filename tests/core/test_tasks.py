"""Every registered task × every verb: a verb the task claims works on a tiny run of it; a verb it does
not claim is refused in one line with exit code 2. Every run passes `audit` and shows its key metric in
`runs`. A task added to the registry without an entry in RUN_MAKERS below fails here."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelforge
from cli_runner import modelforge_in_process
from modelforge.runs import list_runs
from modelforge.tasks import RUN_VERBS, TASKS

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "modelforge"


def table(folder: Path, target: str) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["color"] = rng.choice(["red", "blue"], size=160)
    frame["y"] = (x[:, 0] + x[:, 1] > 0).astype(int) if target == "label" else x[:, 0] * 2.0 + x[:, 2]
    path = folder / "rows.csv"
    frame.to_csv(path, index=False)
    return path


def supervised(kind: str) -> Callable[[Path], tuple[dict[str, Any], Path]]:
    def make(folder: Path) -> tuple[dict[str, Any], Path]:
        data = table(folder, kind)
        task = "classification" if kind == "label" else "regression"
        config = {
            "task": task,
            "data": {"train": str(data), "target": "y"},
            "model": {"type": "mlp", "hidden": [8]},
            "train": {"epochs": 2, "batch_size": 32, "threads": 1},
        }
        return config, data

    return make


def multilabel(folder: Path) -> tuple[dict[str, Any], Path]:
    path = table(folder, "label")
    frame = pd.read_csv(path)
    frame["y"] = [
        "|".join(n for n, on in (("x", a > 0), ("z", b > 0)) if on) for a, b in zip(frame.a, frame.b, strict=True)
    ]
    frame.to_csv(path, index=False)
    config = {
        "task": "multilabel",
        "data": {"train": str(path), "target": "y"},
        "model": {"type": "mlp", "hidden": [8]},
        "train": {"epochs": 2, "batch_size": 32, "threads": 1},
        "decision": {"optimize": "f1"},
    }
    return config, path


def language_model(folder: Path) -> tuple[dict[str, Any], Path]:
    text = folder / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 120, encoding="utf-8")
    config = {
        "task": "language-modeling",
        "data": {"train": str(text), "tokenizer": "char"},
        "model": {"type": "gpt", "layers": 1, "heads": 2, "width": 16, "context": 16, "dropout": 0.0},
        "train": {"batch_size": 4, "max_steps": 6, "eval_every": 3, "eval_batches": 1, "threads": 1},
    }
    return config, text


def recommendation(folder: Path) -> tuple[dict[str, Any], Path]:
    rng = np.random.default_rng(0)
    rows = [(u, i, float(1 + (u + i) % 5), t) for t, (u, i) in enumerate(rng.integers(0, 20, size=(400, 2)))]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).drop_duplicates(["user", "item"])
    path = folder / "ratings.csv"
    frame.to_csv(path, index=False)
    config = {
        "task": "recommendation",
        "data": {"train": str(path)},
        "model": {"type": "mf", "dim": 4},
        "train": {"epochs": 2, "batch_size": 64, "threads": 1},
    }
    return config, path


def generation(folder: Path) -> tuple[dict[str, Any], Path]:
    digits = ROOT / "examples" / "data" / "digits.npz"
    config = {
        "task": "generation",
        "data": {"train": str(digits), "target": "y", "split": {"valid": 0.1, "test": 0.2}},
        "model": {"type": "vae"},
        "train": {"epochs": 1, "batch_size": 64, "threads": 1},
    }
    return config, digits


def seq2seq(folder: Path) -> tuple[dict[str, Any], Path]:
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    numbers = [str(n) for n in range(100)]
    frame = pd.DataFrame({"digits": numbers, "words": [" ".join(words[int(d)] for d in n) for n in numbers]})
    path = folder / "pairs.csv"
    frame.to_csv(path, index=False)
    config = {
        "task": "seq2seq",
        "data": {"train": str(path), "target": "words"},
        "model": {"width": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "ffn": 32},
        "train": {"epochs": 1, "batch_size": 16, "threads": 1},
        "seq2seq": {"source_tokenizer": "char", "target_tokenizer": "symbols", "beam": 2, "max_target_tokens": 8},
    }
    return config, path


def detection(folder: Path) -> tuple[dict[str, Any], Path]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detection"))
    from shapes import write_shapes

    path = write_shapes(folder / "shapes", n_images=30)
    config = {
        "task": "detection",
        "data": {"train": str(path), "split": {"valid": 0.2, "test": 0.2}},
        "model": {"widths": [8, 16], "head_width": 8},
        # 3 epochs: after one, every score sits near the 0.01 prior, and the exported graph's top-k may
        # order scores 1e-7 apart otherwise than eager torch (export then refuses: parity failed)
        "train": {"epochs": 3, "batch_size": 8, "threads": 1},
        "detection": {"image_size": 32},
    }
    return config, path


def speech_recognition(folder: Path) -> tuple[dict[str, Any], Path]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speech"))
    from tones import tiny_config, write_tones

    path = write_tones(folder / "tones", n=40)
    return tiny_config(str(path), epochs=1), path


RUN_MAKERS: dict[str, Callable[[Path], tuple[dict[str, Any], Path]]] = {
    "classification": supervised("label"),
    "regression": supervised("value"),
    "multilabel": multilabel,
    "language-modeling": language_model,
    "recommendation": recommendation,
    "generation": generation,
    "seq2seq": seq2seq,
    "detection": detection,
    "speech-recognition": speech_recognition,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """One finished tiny run per registered task: (run directory, its data file)."""
    made = {}
    for name in TASKS.names():
        folder = tmp_path_factory.mktemp(name)
        config, data = RUN_MAKERS[name](folder)
        run = modelforge.train(config, folder / "run")
        made[name] = (Path(run.path), data)
    return made


def test_every_task_has_a_tiny_run() -> None:
    missing = [name for name in TASKS.names() if name not in RUN_MAKERS]
    assert not missing, f"add a tiny run for {missing} to RUN_MAKERS in tests/core/test_tasks.py"


def verb_arguments(verb: str, task: str, run: Path, data: Path, out: Path) -> list[str] | None:
    """The command line that exercises `verb` on a run; None where the verb takes no run (tune, resume)."""
    formats = TASKS.get(task).export_formats or ("onnx",)
    quantize = TASKS.get(task).quantize_kinds[0]
    return {
        "evaluate": ["evaluate", str(run), "--json"],
        "predict": ["predict", str(run), "--data", str(data)],
        "serve": None,  # answered through the app below
        "export": ["export", str(run), "--format", formats[0], "--out", str(out / "exported")],
        "explain": ["explain", str(run), "--data", str(data), "--rows", "0", "--out", str(out / "explain")],
        "report": ["report", str(run), "--out", str(out / "report.html"), "--no-explain"],
        "tune": None,
        "compress": ["compress", str(run), "--out", str(out / "compressed"), "--quantize", quantize],
        "distill": None,  # needs a student config; tests/compress covers it, refusal is checked below
        "benchmark": ["benchmark", str(run), "--out", str(out / "bench")],
        "generate": [
            *("generate", str(run), "--prompt", "the", "--max-new-tokens", "4"),
            "--n",
            "4",
            "--out",
            str(out / "grid.png"),
        ],
        "resume": None,
    }[verb]


CASES = [(task, verb) for task in TASKS.names() for verb in RUN_VERBS]


@pytest.mark.parametrize(("task", "verb"), CASES, ids=[f"{t}-{v}" for t, v in CASES])
def test_verb_works_or_refuses_in_one_line(
    task: str, verb: str, runs: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    run, data = runs[task]
    supported = TASKS.get(task).supports(verb)
    if verb == "distill" and not supported:
        student = tmp_path / "student.yaml"
        student.write_text("model: {type: mlp}\n")
        args: list[str] | None = ["distill", str(run), str(student), "--out", str(tmp_path / "student")]
    elif verb == "tune" and not supported:
        config = tmp_path / "tune.yaml"
        config.write_text(
            f"task: {task}\ndata: {{train: {data}}}\ntune: {{space: {{train.lr: {{uniform: [0.1, 1]}}}}}}\n"
        )
        args = ["tune", str(config)]
    else:
        args = verb_arguments(verb, task, run, data, tmp_path)
    if args is None:
        if verb == "serve":
            check_serves_one_request(run)
        return  # tune, distill and resume run in their own tests (tests/tune, tests/compress, *_resume.py)
    result = modelforge_in_process(*args)
    if supported:
        assert result.returncode == 0, f"{task} {verb}: {result.stderr[-2000:]}"
        if verb in ("compress", "distill"):  # the new run is finished like any other: audit passes
            audited = modelforge_in_process("audit", str(tmp_path / "compressed"))
            assert audited.returncode == 0, f"{task} {verb}: {audited.stdout[-1500:]}"
    else:
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, f"{task} {verb}: exit {result.returncode}: {result.stderr[-2000:]}"
        assert len(lines) == 1 and task in lines[0], f"{task} {verb}: {result.stderr[-2000:]}"


def check_serves_one_request(run: Path) -> None:
    from fastapi.testclient import TestClient

    from modelforge.serve.app import create_app
    from modelforge.serve.services import load_services

    services = load_services([f"m={run}"])
    with TestClient(create_app(services)) as client:
        info = client.get("/v1/models/m").json()
        body = request_for(info)
        answer = client.post(f"/v1/models/m/{info['endpoint']}", json=body)
        assert answer.status_code == 200, answer.text


def request_for(info: dict[str, Any]) -> dict[str, Any]:
    endpoint = info["endpoint"]
    if endpoint == "generate":
        return {"prompt": "the", "max_new_tokens": 3}
    if endpoint == "images":
        return {"n": 2}
    features = info["features"]
    record = {f["name"]: (1.0 if f["kind"] == "numeric" else "red") for f in features if "optional" not in f["kind"]}
    record.update({f["name"]: [[0.0, 1.0], [1.0, 0.0]] for f in features if f["kind"] == "image"})  # 2×2 pixels
    record.update({f["name"]: silent_wav() for f in features if f["kind"] == "audio"})  # base64 WAV
    if features and features[0]["kind"] == "user id":
        record = {features[0]["name"]: "1"}
    return {"records": [record]}


def silent_wav() -> str:
    import base64
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(b"\x00\x00" * 800)
    return base64.b64encode(buffer.getvalue()).decode()


def test_every_run_passes_audit_and_shows_its_key_metric(runs: dict[str, tuple[Path, Path]]) -> None:
    for task, (run, _) in runs.items():
        result = modelforge_in_process("audit", str(run))
        assert result.returncode == 0, f"{task}: {result.stdout[-1500:]} {result.stderr[-500:]}"
        (row,) = [r for r in list_runs(run.parent) if r["run"] == run.name]
        assert re.fullmatch(r"-?\d+\.\d{4}", row["value"]), f"{task}: runs shows {row}"


def test_no_code_outside_the_registry_asks_which_task_a_run_is() -> None:
    """Comparisons with a task's name (==, !=, in) and dicts keyed by task names live in tasks.py only."""
    names = "|".join(re.escape(name) for name in TASKS.names())
    compared = re.compile(rf"""(==|!=|\bin\b\s*[(\[{{][^)\]}}]*)\s*["']({names})["']|["']({names})["']\s*(==|!=|:)""")
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "tasks.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if compared.search(line) and "task:" not in line and "model_copy(" not in line:
                found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not found, "dispatch on task names outside modelforge/tasks.py:\n" + "\n".join(found)


def test_a_key_the_task_does_not_read_is_an_error(tmp_path: Path) -> None:
    from modelforge.config import load_config
    from modelforge.errors import ConfigError

    config, _ = recommendation(tmp_path)
    config["train"]["label_smoothing"] = 0.1
    with pytest.raises(ConfigError, match=r"train\.label_smoothing: not used by task recommendation \(reads .*epochs"):
        load_config(config)
    config["train"].pop("label_smoothing")
    config["features"] = [{"name": "user", "type": "category"}]
    with pytest.raises(ConfigError, match="features: not used by task recommendation"):
        load_config(config)
    corpus, _ = language_model(tmp_path)
    corpus["train"]["schedule"] = "step"
    with pytest.raises(
        ConfigError, match=r"train\.schedule: task language-modeling supports cosine, constant, got 'step'"
    ):
        load_config(corpus)


def test_the_saved_config_is_what_ran(runs: dict[str, tuple[Path, Path]]) -> None:
    import yaml

    saved = yaml.safe_load((runs["language-modeling"][0] / "config.yaml").read_text())
    assert saved["train"]["schedule"] == "cosine" and saved["model"]["type"] == "gpt"
    for task, (run, _) in runs.items():
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert set(saved["train"]) <= TASKS.get(task).train_keys, task
