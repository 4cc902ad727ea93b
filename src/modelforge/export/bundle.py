"""`modelforge export RUN --format bundle --out DIR`: a folder that predicts without PyTorch or modelforge.

    DIR/
      model.onnx           the run's graph (parity-checked against the eager model, as --format onnx)
      preprocessing.json   the fitted preprocessing of every input column (the run's own JSON state)
      labels.json          task, class labels in output order (or the target's scale, regression)
      decision.json        classification runs with a saved decision: calibration and threshold
      tokenizer.json       runs over a pretrained encoder's text: its tokenizer
      predictor.py         `predict(records) -> list[dict]` and a tiny HTTP server (numpy + onnxruntime)
      requirements.txt     what predictor.py needs, pinned to the versions that exported it
      README.md, Dockerfile

predictor.py is `modelforge/export/bundle_predictor.py`, copied. Before the folder appears, the
bundle's own answers on real rows of the run's data are compared with `Run.predict` (labels
equal, probabilities or values within the tolerance); the folder is staged and renamed only
when complete, so a failure leaves nothing behind.
"""

from __future__ import annotations

import importlib.util
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from modelforge.export.parity import TOLERANCE, ExportError, Parity

PREDICTOR_SOURCE = Path(__file__).with_name("bundle_predictor.py")
CHECK_ROWS = 64
DOCKERFILE = """FROM python:3.11-slim
WORKDIR /bundle
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
EXPOSE 8000
CMD ["python", "predictor.py", "serve", "--host", "0.0.0.0", "--port", "8000"]
"""


def requirements(feature_types: set[str], hf_text: bool) -> list[str]:
    """Pinned requirements of predictor.py for these input columns (the exporting machine's versions)."""
    packages = ["numpy", "onnxruntime"]
    if hf_text:
        packages.append("tokenizers")
    if "image" in feature_types:
        packages.append("pillow")  # image files and resizing; pixel arrays alone need numpy only
    pinned = []
    for package in packages:
        try:
            pinned.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pinned.append(package)
    return pinned


def export_bundle(run_dir: Path, out: str | Path | None, tolerance: float = TOLERANCE) -> tuple[Path, Parity]:
    """Write the bundle of a classification or regression run; returns its folder and the ONNX parity."""
    from modelforge.compress.variant import load_source_run
    from modelforge.export.onnx import export_onnx
    from modelforge.export.recipe import parity_sample
    from modelforge.files import atomic_write_json, atomic_write_text
    from modelforge.run import check_empty_output, staged_run_directory

    dest = Path(out) if out else run_dir / "bundle"
    check_empty_output(dest)
    run = load_source_run(run_dir, "export")
    state = run.preprocessor.to_json()
    types = {feature["type"] for feature in state["features"]}
    hf_text = [f for f in state["features"] if f["type"] == "text" and f["state"]["tokenizer"] == "hf"]
    with staged_run_directory(dest) as folder:
        parity = export_onnx(run, parity_sample(run), folder / "model.onnx")
        if parity.max_abs_diff > tolerance:
            raise ExportError(f"export --format bundle: {parity.describe()}; nothing written")
        if hf_text:
            tokenizer_folder = Path(hf_text[0]["state"]["tokenizer_folder_"])
            shutil.copyfile(tokenizer_folder / "tokenizer.json", folder / "tokenizer.json")
        preprocessing = {
            "features": state["features"],
            "hashed_columns": list(run.config.data.hash),
            "dropped_columns": list(run.config.data.drop),
        }
        atomic_write_json(folder / "preprocessing.json", preprocessing)
        atomic_write_json(folder / "labels.json", label_file(run, state))
        if (run_dir / "decision.json").exists():  # calibration and threshold, applied as `modelforge predict` does
            shutil.copyfile(run_dir / "decision.json", folder / "decision.json")
        shutil.copyfile(PREDICTOR_SOURCE, folder / "predictor.py")
        atomic_write_text(folder / "requirements.txt", "\n".join(requirements(types, bool(hf_text))) + "\n")
        atomic_write_text(folder / "Dockerfile", DOCKERFILE)
        checked = check_bundle(run, folder, tolerance)
        atomic_write_text(folder / "README.md", readme(run, state, parity, checked))
    return dest, parity


def label_file(run: Any, state: dict[str, Any]) -> dict[str, Any]:
    encoder = state["target_encoder"]
    labels: dict[str, Any] = {"task": run.task, "target": state["target"], "run": str(run.path)}
    if encoder["kind"] == "label":
        labels["classes"] = encoder["classes_"]
    else:
        labels["target_scale"] = {"mean_": encoder["mean_"], "std_": encoder["std_"]}
    return labels


def load_bundle_module(folder: Path) -> Any:
    """The bundle's predictor.py as a module (its `Bundle` reads the folder it is given)."""
    spec = importlib.util.spec_from_file_location(f"modelforge_bundle_{abs(hash(folder))}", folder / "predictor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_bundle(run: Any, folder: Path, tolerance: float) -> int:
    """The bundle's answers on up to CHECK_ROWS rows of the run's data must be the run's own; the
    number of rows checked (0 when the data file is gone)."""
    from modelforge.errors import ModelforgeError

    source = run.config.data.test or run.config.data.train
    source = source[0] if isinstance(source, list) else source
    try:
        frame = run._prepare(source).head(CHECK_ROWS)
    except (ModelforgeError, OSError):
        return 0
    records = frame.to_dict("records")
    answers = load_bundle_module(folder).Bundle(folder).predict(records)
    expected = run.predict(frame)
    problem = compare_answers(answers, expected, tolerance)
    if problem:
        raise ExportError(f"export --format bundle: the bundle's predictions differ from the run's: {problem}")
    return len(records)


def compare_answers(answers: list[dict[str, Any]], expected: Any, tolerance: float) -> str | None:
    """What differs between the bundle's answers and `Run.predict`'s frame (None when they agree)."""
    if "prediction" in answers[0]:
        got = np.array([a["prediction"] for a in answers])
        worst = float(np.abs(got - expected["prediction"].to_numpy(dtype=np.float64)).max())
        return None if worst <= tolerance * max(1.0, float(np.abs(got).max())) else f"max abs diff {worst:.3g}"
    for row, (answer, label) in enumerate(zip(answers, expected["prediction"], strict=True)):
        if str(answer["label"]) != str(label):
            return f"row {row + 1}: label {answer['label']!r}, the run says {label!r}"
    probability = np.array([[a["probabilities"][str(c)] for c in answers[0]["probabilities"]] for a in answers])
    columns = [f"probability_{c}" for c in answers[0]["probabilities"]]
    worst = float(np.abs(probability - expected[columns].to_numpy(dtype=np.float64)).max())
    return None if worst <= tolerance else f"max abs probability diff {worst:.3g}"


def readme(run: Any, state: dict[str, Any], parity: Parity, checked: int) -> str:
    columns = "\n".join(f"- `{f['name']}` ({f['type']})" for f in state["features"])
    answer = (
        '{"prediction": 12.3}'
        if state["target_encoder"]["kind"] != "label"
        else '{"label": ..., "probabilities": {"<class>": 0.9, ...}}'
    )
    check = (
        f"- the bundle's answers on {checked} rows of the run's data equal `modelforge predict`'s\n"
        if checked
        else "- (the run's data file was not found: the bundle was not compared with `modelforge predict`)\n"
    )
    return f"""# {run.path.name}: {run.task} without PyTorch

Exported by `modelforge export {run.path} --format bundle`. Needs Python 3.10+ and
`pip install -r requirements.txt` (numpy and onnxruntime; tokenizers for pretrained-encoder text).

```python
from predictor import predict
predict([{{...one value per column...}}])   # [{answer}]
```

```
python predictor.py predict rows.jsonl     # or rows.json / rows.csv; one JSON answer per line
python predictor.py serve --port 8000      # POST /predict {{"records": [...]}}, GET /health
docker build -t {run.path.name.lower() or "model"} . && docker run -p 8000:8000 {run.path.name.lower() or "model"}
```

Columns each record needs:
{columns}

A record missing a column is refused (`BundleInputError`, exit code 2 on the command line).

Checks made at export:
- ONNX graph vs the eager model: {parity.describe()}
{check}"""
