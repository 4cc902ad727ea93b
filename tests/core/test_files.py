"""files.py, the ground floor: atomic writes keep modes and name the path on failure; YAML and text
that is not UTF-8 are one-line errors; manifest names stay inside their folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_runner import modelforge_in_process
from modelforge.errors import ConfigError, RunError
from modelforge.files import atomic_write_text, current_umask, inside, read_yaml_file
from modelforge.run import staged_run_directory

BREAST_CANCER = Path(__file__).resolve().parents[2] / "examples" / "data" / "breast_cancer.csv"


@pytest.fixture
def umask_027() -> Iterator[None]:
    saved = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_and_staged_folders_follow_the_umask(tmp_path: Path, umask_027: None) -> None:
    assert current_umask() == 0o027
    atomic_write_text(tmp_path / "new.txt", "x")
    assert mode(tmp_path / "new.txt") == 0o640  # not mkstemp's 0600
    with staged_run_directory(tmp_path / "run") as staged:
        atomic_write_text(staged / "a.json", "{}")
    assert mode(tmp_path / "run") == 0o750 and mode(tmp_path / "run" / "a.json") == 0o640  # not mkdtemp's 0700


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    for kept in (0o600, 0o664):
        path = tmp_path / f"{kept:o}.txt"
        path.write_text("old")
        path.chmod(kept)
        atomic_write_text(path, "new")
        assert path.read_text() == "new" and mode(path) == kept


def test_init_force_and_predict_out_keep_the_mode_of_the_file_they_replace(tmp_path: Path, mlp_run: Path) -> None:
    config, predictions = tmp_path / "c.yaml", tmp_path / "p.csv"
    for path in (config, predictions):
        path.write_text("old\n")
        path.chmod(0o604)
    made = modelforge_in_process("init", str(BREAST_CANCER), "--target", "diagnosis", "--out", str(config), "--force")
    predicted = modelforge_in_process("predict", str(mlp_run), "--data", str(BREAST_CANCER), "--out", str(predictions))
    assert made.returncode == 0 and predicted.returncode == 0, made.stderr + predicted.stderr
    assert "task: classification" in config.read_text() and predictions.read_text().startswith("row,prediction,")
    assert mode(config) == 0o604 and mode(predictions) == 0o604


def test_a_failed_write_names_the_path_not_the_temporary(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught:
        atomic_write_text("/proc/modelforge-nothing.txt", "x")
    assert caught.value.filename == "/proc/modelforge-nothing.txt"
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        atomic_write_text(tmp_path / "folder", "x")
    assert caught.value.filename == str(tmp_path / "folder") and list(tmp_path.iterdir()) == [tmp_path / "folder"]


def test_yaml_that_is_not_utf8_or_not_yaml_is_the_callers_error(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes("a: 1\nb: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text \(byte 0xe9 on line 2\); save it as UTF-8"):
        read_yaml_file(tmp_path / "latin1.yaml", ConfigError)
    (tmp_path / "broken.yaml").write_text("a: [1,\n")
    with pytest.raises(RunError, match=r"broken\.yaml: line 2, column 1"):
        read_yaml_file(tmp_path / "broken.yaml", RunError)


def test_inside_refuses_names_that_leave_the_folder(tmp_path: Path) -> None:
    (tmp_path / "run" / "sub").mkdir(parents=True)
    (tmp_path / "run" / "out").symlink_to(tmp_path)
    run = tmp_path / "run"
    assert inside(run, "sub/x.json") == run / "sub" / "x.json"
    for name in ("/etc/passwd", "../x", "sub/../../x", "out/x", ""):
        assert inside(run, name) is None, name
