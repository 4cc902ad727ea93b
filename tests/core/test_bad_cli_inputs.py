"""Hostile input through the CLI: every case ends in one `error:` line, its exit code, no traceback,
and leaves the folder it ran in exactly as it was (nothing created, nothing half-written).

Exit codes: 2 for input modelforge refuses, 74 (sysexits' EX_IOERR) for a path the system will not
read or write. Paths under /proc and /sys stand in for unwritable folders, since tests may run as
root, for whom a chmod-ed folder is still writable; the chmod cases run only as another user.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from cli_runner import modelforge_in_process

ROOT = Path(__file__).resolve().parents[2]
BREAST_CANCER = ROOT / "examples" / "data" / "breast_cancer.csv"
AS_ROOT = pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into a read-only folder; /proc and /sys cases cover it"
)

RAGGED = "a,y\n1,x\n2,y,3\n3,x\n4,y,5\n"  # data rows 2 and 4 have a field too many
LATIN1 = "a,y\n1,x\n2,caf\u00e9\n".encode("latin-1")


def npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def latin1_run_config(tmp: Path, run: Path) -> None:
    """A copy of the run whose config.yaml is Latin-1 (an editor's doing): not UTF-8 at its 'é'."""
    shutil.copytree(run, tmp / "run")
    text = (tmp / "run" / "config.yaml").read_text()
    (tmp / "run" / "config.yaml").write_bytes(("# r\u00e9sum\u00e9\n" + text).encode("latin-1"))


def read_only_folder(tmp: Path, run: Path) -> None:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)


@dataclass
class BadInput:
    name: str
    argv: list[str]  # {tmp}: the case's folder, {run}: a trained breast-cancer MLP run, {cfg}: a good config
    code: int
    message: str  # in the one error line
    files: dict[str, str | bytes] = field(default_factory=dict)  # written into {tmp} first
    setup: Callable[[Path, Path], None] | None = None
    file_size_limit: int | None = None  # run in a subprocess under this RLIMIT_FSIZE (a full disk)


CASES = [
    # train --out
    BadInput(
        "train-out-is-a-file",
        ["train", "{cfg}", "--out", "{tmp}/afile"],
        2,
        "afile: exists and is not a directory",
        {"afile": "keep me"},
    ),
    BadInput(
        "train-out-not-empty",
        ["train", "{cfg}", "--out", "{tmp}/full"],
        2,
        "full: output directory exists and is not empty",
        {"full/x.txt": "x"},
    ),
    BadInput(
        "train-out-under-proc",
        ["train", "{cfg}", "--out", "/proc/modelforge-run"],
        74,
        "/proc/modelforge-run: No such file or directory",
    ),
    BadInput(
        "train-out-under-sys",
        ["train", "{cfg}", "--out", "/sys/modelforge-run"],
        74,
        "/sys/modelforge-run: Operation not permitted",
    ),
    BadInput(
        "train-out-read-only",
        ["train", "{cfg}", "--out", "{tmp}/ro/run"],
        74,
        "ro/run: Permission denied",
        setup=read_only_folder,
    ),
    # train: config and data
    BadInput(
        "train-config-not-utf8",
        ["train", "{tmp}/latin1.yaml"],
        2,
        "latin1.yaml: not UTF-8 text (byte 0xe9 on line 1)",
        {"latin1.yaml": "# caf\u00e9\ndata: {train: x.csv}\n".encode("latin-1")},
    ),
    BadInput(
        "train-ragged-csv",
        ["train", "{tmp}/c.yaml", "--out", "{tmp}/run"],
        2,
        "r.csv: line 3: 3 fields, expected 2 (2 of 4 rows",
        {"r.csv": RAGGED, "c.yaml": "data: {train: r.csv, target: y}\n"},
    ),
    BadInput(
        "train-jsonl-not-objects",
        ["train", "{tmp}/c.yaml", "--out", "{tmp}/run"],
        2,
        "r.jsonl: line 2: not a JSON object (1 of 3 rows",
        {
            "r.jsonl": '{"a": 1, "y": "x"}\n[2, "y"]\n{"a": 3, "y": "x"}\n',
            "c.yaml": "data: {train: r.jsonl, target: y}\n",
        },
    ),
    BadInput(
        "train-csv-not-utf8",
        ["train", "{tmp}/c.yaml", "--out", "{tmp}/run"],
        2,
        "l.csv: not UTF-8 text (byte 0xe9 on line 3)",
        {"l.csv": LATIN1, "c.yaml": "data: {train: l.csv, target: y}\n"},
    ),
    BadInput(
        "train-npz-scalar-array",
        ["train", "{tmp}/c.yaml", "--out", "{tmp}/run"],
        2,
        "s.npz: array 'y' is a single value",
        {"s.npz": npz_bytes(x=np.zeros((4, 2)), y=np.array(1)), "c.yaml": "data: {train: s.npz, target: y}\n"},
    ),
    BadInput(
        "train-npz-garbage",
        ["train", "{tmp}/c.yaml", "--out", "{tmp}/run"],
        2,
        "g.npz: not an .npz archive of arrays",
        {"g.npz": b"\x00garbage" * 20, "c.yaml": "data: {train: g.npz, target: y}\n"},
    ),
    BadInput(
        "train-npz-object-arrays",
        ["train", "{tmp}/c.yaml", "--out", "{tmp}/run"],
        2,
        "o.npz: holds object arrays (pickles)",
        {"o.npz": npz_bytes(x=np.array([1, "a", None], dtype=object)), "c.yaml": "data: {train: o.npz, target: y}\n"},
    ),
    # init
    BadInput(
        "init-ragged-csv",
        ["init", "{tmp}/r.csv", "--target", "y"],
        2,
        "r.csv: line 3: 3 fields, expected 2",
        {"r.csv": RAGGED},
    ),
    BadInput(
        "init-csv-not-utf8", ["init", "{tmp}/l.csv", "--target", "y"], 2, "l.csv: not UTF-8 text", {"l.csv": LATIN1}
    ),
    BadInput(
        "init-npz-scalar-array",
        ["init", "{tmp}/s.npz", "--target", "y"],
        2,
        "array 'x' is a single value",
        {"s.npz": npz_bytes(x=np.array(3.0), y=np.array([1]))},
    ),
    BadInput(
        "init-npz-garbage",
        ["init", "{tmp}/g.npz", "--target", "y"],
        2,
        "g.npz: not an .npz archive",
        {"g.npz": b"PK\x03\x04 torn zip"},
    ),
    BadInput(
        "init-out-exists",
        ["init", str(BREAST_CANCER), "--target", "diagnosis", "--out", "{tmp}/c.yaml"],
        2,
        "c.yaml: exists; pass --force",
        {"c.yaml": "mine\n"},
    ),
    BadInput(
        "init-force-out-is-a-folder",
        ["init", str(BREAST_CANCER), "--target", "diagnosis", "--out", "{tmp}/d", "--force"],
        74,
        "/d: Is a directory",
        {"d/x.txt": "x"},
    ),
    BadInput(
        "init-out-under-proc",
        ["init", str(BREAST_CANCER), "--target", "diagnosis", "--out", "/proc/modelforge-x/c.yaml"],
        74,
        "/proc/modelforge-x: No such file or directory",
    ),
    BadInput(
        "init-out-read-only",
        ["init", str(BREAST_CANCER), "--target", "diagnosis", "--out", "{tmp}/ro/c.yaml"],
        74,
        "ro/c.yaml: Permission denied",
        setup=read_only_folder,
    ),
    # predict
    BadInput(
        "predict-ragged-rows",
        ["predict", "{run}", "--data", "{tmp}/r.csv", "--out", "{tmp}/p.csv"],
        2,
        "r.csv: line 3: 3 fields, expected 30 (1 of 3 rows",
        {"r.csv": "DATA"},
    ),
    BadInput(
        "predict-jsonl-not-objects",
        ["predict", "{run}", "--data", "{tmp}/r.jsonl"],
        2,
        "r.jsonl: line 1: not a JSON object",
        {"r.jsonl": "[1, 2]\n"},
    ),
    BadInput(
        "predict-data-not-utf8",
        ["predict", "{run}", "--data", "{tmp}/l.csv", "--out", "{tmp}/p.csv"],
        2,
        "l.csv: not UTF-8 text",
        {"l.csv": LATIN1},
    ),
    BadInput(
        "predict-npz-garbage",
        ["predict", "{run}", "--data", "{tmp}/g.npz"],
        2,
        "g.npz: not an .npz archive",
        {"g.npz": b"\x93NUMPY broken"},
    ),
    BadInput(
        "predict-run-config-not-utf8",
        ["predict", "{tmp}/run", "--data", str(BREAST_CANCER)],
        2,
        "config.yaml: not UTF-8 text (byte 0xe9 on line 1)",
        setup=latin1_run_config,
    ),
    BadInput(
        "predict-out-is-a-folder",
        ["predict", "{run}", "--data", str(BREAST_CANCER), "--out", "{tmp}/d"],
        74,
        "/d: Is a directory",
        {"d/x.txt": "x"},
    ),
    BadInput(
        "predict-out-under-proc",
        ["predict", "{run}", "--data", str(BREAST_CANCER), "--out", "/proc/modelforge-p.csv"],
        74,
        "/proc/modelforge-p.csv: ",
    ),
    BadInput(
        "predict-out-under-sys",
        ["predict", "{run}", "--data", str(BREAST_CANCER), "--out", "/sys/modelforge/p.csv"],
        74,
        "/sys/modelforge: Operation not permitted",
    ),
    BadInput(
        "predict-out-read-only",
        ["predict", "{run}", "--data", str(BREAST_CANCER), "--out", "{tmp}/ro/p.csv"],
        74,
        "ro/p.csv: Permission denied",
        setup=read_only_folder,
    ),
    BadInput(
        "predict-disk-full",
        ["predict", "{run}", "--data", str(BREAST_CANCER), "--out", "{tmp}/p.csv"],
        74,
        "p.csv: File too large",
        file_size_limit=4096,
    ),
    # evaluate, export, audit
    BadInput(
        "evaluate-ragged-rows",
        ["evaluate", "{run}", "--data", "{tmp}/r.csv"],
        2,
        "r.csv: line 3: 3 fields, expected 31 (1 of 3 rows",
        {"r.csv": "DATA+"},
    ),
    BadInput(
        "evaluate-run-config-not-utf8",
        ["evaluate", "{tmp}/run", "--json"],
        2,
        "config.yaml: not UTF-8 text",
        setup=latin1_run_config,
    ),
    BadInput(
        "evaluate-npz-scalar-array",
        ["evaluate", "{run}", "--data", "{tmp}/s.npz"],
        2,
        "array 'y' is a single value",
        {"s.npz": npz_bytes(x=np.zeros((2, 30)), y=np.array(0))},
    ),
    BadInput(
        "export-out-under-proc",
        ["export", "{run}", "--format", "torchscript", "--out", "/proc/modelforge-x/m.pt"],
        74,
        "/proc/modelforge-x: No such file or directory",
    ),
    BadInput(
        "export-out-exists",
        ["export", "{run}", "--format", "torchscript", "--out", "{tmp}/d"],
        2,
        "/d: already exists",
        {"d/x.txt": "x"},
    ),
    BadInput(
        "export-out-read-only",
        ["export", "{run}", "--format", "torchscript", "--out", "{tmp}/ro/m.pt"],
        74,
        "ro/m.pt: Permission denied",
        setup=read_only_folder,
    ),
    BadInput(
        "audit-run-config-not-utf8", ["audit", "{tmp}/run"], 2, "config.yaml: not UTF-8 text", setup=latin1_run_config
    ),
]
READ_ONLY = {case.name for case in CASES if case.setup is read_only_folder}


def breast_cancer_rows(extra_column: bool) -> str:
    """Two rows of the breast-cancer features (+ the target for evaluate) and one cut short after 3 fields."""
    lines = BREAST_CANCER.read_text().splitlines()
    header = lines[0].split(",")
    keep = list(range(len(header))) if extra_column else [i for i, name in enumerate(header) if name != "diagnosis"]
    rows = [",".join(line.split(",")[i] for i in keep) for line in lines[:4]]
    rows[2] = ",".join(rows[2].split(",")[:3])
    return "\n".join(rows) + "\n"


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under `folder` (hidden ones too) with its content's sha256 ('' for folders)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        for path in sorted(folder.rglob("*"))
    }


def run_case(case: BadInput, argv: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    if case.file_size_limit is None:
        return modelforge_in_process(*argv)

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (case.file_size_limit, case.file_size_limit))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "modelforge", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=300,
        preexec_fn=limit_file_size,
    )


def test_the_table_covers_every_verb_and_both_codes() -> None:
    assert len(CASES) >= 30 and len({case.name for case in CASES}) == len(CASES)
    assert {case.argv[0] for case in CASES} >= {"train", "init", "predict", "evaluate", "export", "audit"}
    assert {case.code for case in CASES} == {2, 74}


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, marks=AS_ROOT) if case.name in READ_ONLY else case for case in CASES],
    ids=[case.name for case in CASES],
)
def test_bad_input_is_one_line_and_leaves_nothing_behind(
    case: BadInput, mlp_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() installs its own
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg.yaml").write_text(
        f"data: {{train: {BREAST_CANCER}, target: diagnosis}}\nmodel: {{type: mlp}}\ntrain: {{epochs: 1}}\n"
    )
    for name, content in case.files.items():
        content = breast_cancer_rows(content == "DATA+") if content in ("DATA", "DATA+") else content
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(content)
    if case.setup is not None:
        case.setup(tmp_path, mlp_run)
    before = snapshot(tmp_path)
    argv = [arg.format(tmp=tmp_path, run=mlp_run, cfg=tmp_path / "cfg.yaml") for arg in case.argv]

    result = run_case(case, argv, tmp_path)

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == case.code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert case.message in lines[0]
    assert "allow_pickle" not in lines[0]
    assert snapshot(tmp_path) == before  # nothing created, nothing changed, no temporaries


def test_a_failed_checkpoint_write_stops_training_at_once_and_says_none_exists(tmp_path: Path) -> None:
    """The first checkpoint (~50 KB with Adam's state) exceeds a 30 KB file-size limit that the run's
    small files fit under: the failure is reported at the next step, not at the next save."""
    (tmp_path / "c.yaml").write_text(
        f"data: {{train: {BREAST_CANCER}, target: diagnosis}}\n"
        "model: {type: mlp, hidden: [64, 32]}\ntrain: {epochs: 20, batch_size: 8}\n"
    )
    case = BadInput("checkpoint", [], 2, "", file_size_limit=30_000)
    result = run_case(case, ["train", "c.yaml", "--out", "run", "--no-progress"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[1:] == [  # after the first epoch's log line
        "error: run/checkpoints/step-000000057.safetensors: could not write the checkpoint (File too large); "
        "there is no earlier checkpoint"
    ]
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1  # stopped within epoch 2
    assert not list((tmp_path / "run" / "checkpoints").iterdir())  # no torn checkpoint or temporary
