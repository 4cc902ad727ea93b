"""The Python API: plain typed functions, the tutorial page runs as written, errors speak Python."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_type_hints

import pytest

import modelforge
from modelforge.config import RunConfig
from modelforge.data.row_hashes import TrainingRowsWarning
from modelforge.errors import ConfigError, ModelforgeError, RunError

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "site" / "tutorials" / "python-api.md"
CLI_WORDS = re.compile(r"--[a-z]|`modelforge [a-z]")


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_tutorial_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the page runs from the repository root
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(TUTORIAL)
    assert len(blocks) >= 5
    namespace: dict[str, Any] = {"__name__": "tutorial"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"{TUTORIAL.name} block {number}", "exec"), namespace)
    run, work = namespace["run"], namespace["work"]
    assert isinstance(run, modelforge.run.Run) and run.metrics["accuracy"] > 0.85
    assert len(namespace["predictions"]) == len(namespace["new_rows"])
    assert (work / "bc-report.html").stat().st_size > 10_000
    overlap = [str(w.message) for w in caught if issubclass(w.category, TrainingRowsWarning)]
    assert len(overlap) == 1 and "of 569 rows" in overlap[0]  # the page's evaluate on the whole file


def test_train_is_a_plain_typed_function() -> None:
    train = modelforge.train
    assert inspect.isfunction(train) and train.__module__ == "modelforge.api"
    signature = inspect.signature(train)
    assert list(signature.parameters) == ["config", "out", "overrides", "resume", "force", "show_progress"]
    assert [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY] == [
        "resume",
        "force",
        "show_progress",
    ]
    from modelforge.generation.run import GeneratorRun
    from modelforge.run import Run
    from modelforge.text.run import LanguageModelRun
    from modelforge.training.recommend import RecommenderRun

    names = {"RunConfig": RunConfig, "Run": Run, "GeneratorRun": GeneratorRun}
    names.update(LanguageModelRun=LanguageModelRun, RecommenderRun=RecommenderRun)
    hints = get_type_hints(train, globalns={**vars(modelforge.api), **names})
    assert hints["config"] == str | Path | Mapping[str, Any] | RunConfig
    assert hints["overrides"] == Sequence[str] | None
    assert hints["return"] == Run | GeneratorRun | LanguageModelRun | RecommenderRun
    for word in ("config", "out", "overrides", "resume", "force", "Returns", "Raises"):
        assert word in (train.__doc__ or "")
    importlib.import_module("modelforge.training.loop")  # the training package no longer shadows the function
    assert modelforge.train is train
    assert inspect.isfunction(modelforge.load_run) and "Raises" in (modelforge.load_run.__doc__ or "")
    assert "predict" in (modelforge.run.Run.__doc__ or "")


def test_package_ships_its_types() -> None:
    assert (Path(modelforge.__file__).parent / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()  # packaged as package data


def test_version_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelforge", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout == f"modelforge {modelforge.__version__}\n"


def api_errors(tmp_path: Path) -> list[ModelforgeError]:
    """The refusals a Python caller meets most: each caught as the API raises it."""
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file.txt").write_text("x")
    no_run = tmp_path / "no-run"
    no_run.mkdir()
    example = ROOT / "examples" / "breast_cancer.yaml"
    calls = [
        lambda: modelforge.train(example, taken),
        lambda: modelforge.train(example, tmp_path / "a", ["train.lr"]),
        lambda: modelforge.train(example, tmp_path / "b", ["train.epochs.x=1"]),
        lambda: modelforge.train(example, tmp_path / "c", "train.lr=1"),  # type: ignore[arg-type]
        lambda: modelforge.train(42, tmp_path / "d"),  # type: ignore[arg-type]
        lambda: modelforge.train(example, resume=no_run),
        lambda: modelforge.train(example, tmp_path / "e", resume=no_run),
        lambda: modelforge.load_run(no_run),
    ]
    caught = []
    for call in calls:
        with pytest.raises(ModelforgeError) as info:
            call()
        caught.append(info.value)
    return caught


def test_api_errors_speak_python_not_the_command_line(tmp_path: Path) -> None:
    errors = api_errors(tmp_path)
    assert isinstance(errors[0], RunError) and "choose another or remove it" in str(errors[0])
    assert all(isinstance(e, ConfigError) for e in errors[1:5])
    for error in errors:
        assert not CLI_WORDS.search(str(error)), str(error)
