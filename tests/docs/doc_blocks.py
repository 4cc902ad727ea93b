"""Run the code blocks of a Markdown page verbatim, top to bottom, as a reader would.

A fenced ```bash / ```sh block runs in `bash -euo pipefail`, a ```python block in this
interpreter; every block of a page runs in the same working directory, so a Python block can
read the run a shell block made. A block preceded by the line `<!-- not run: REASON -->` is
not run (installing, serving until stopped, downloading); each test states which blocks it
expects to be skipped, so a new skip is a decision, not an accident.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE = {"bash": "bash", "sh": "bash", "python": "python"}
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.+?)\s*-->$")
FENCE = re.compile(r"^(?P<indent> *)```(?P<language>[\w+-]*)\s*$")


@dataclass(frozen=True)
class CodeBlock:
    page: str
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    not_run: str | None  # the reason given in `<!-- not run: ... -->`, None for a block that runs

    @property
    def runnable(self) -> bool:
        return self.language in RUNNABLE and self.not_run is None

    @property
    def first_command(self) -> str:
        """The block's first line without its trailing `# comment`: how tests name a block."""
        first = self.code.strip().splitlines()[0] if self.code.strip() else ""
        return first.split("  #")[0].strip()


def code_blocks(page: Path) -> list[CodeBlock]:
    """Every fenced block of `page`, in order, with the `not run` mark of the line before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[CodeBlock] = []
    previous = ""
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            if lines[index].strip():
                previous = lines[index].strip()
            index += 1
            continue
        indent = len(opening["indent"])
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page}:{index + 1}: the code block is never closed")
        code = "\n".join(line[indent:] for line in lines[index + 1 : end]) + "\n"
        mark = NOT_RUN.match(previous)
        blocks.append(CodeBlock(page.name, index + 1, opening["language"], code, mark["reason"] if mark else None))
        previous = ""
        index = end + 1
    return blocks


def workspace(tmp_path: Path) -> Path:
    """A fresh directory that looks like the repository root to a reader: examples/ copied, .venv linked."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    return tmp_path


def reader_environment(venv_on_path: bool) -> dict[str, str]:
    """The environment of a reader's shell: the virtual environment on PATH only if the page says so."""
    env = {key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry and entry != venv_bin]
    env["PATH"] = os.pathsep.join([venv_bin, *path] if venv_on_path else path)
    env["PYTHONUNBUFFERED"] = "1"
    # One CPU thread per process, as the other tests train: on a small shared machine two busy
    # threads run small models several times slower than one (see how-to/small-cpus.md).
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_block(block: CodeBlock, cwd: Path, env: dict[str, str], timeout: float = 300) -> None:
    """Run one block verbatim; fail with the page, line, and the end of its output."""
    if RUNNABLE[block.language] == "bash":
        command = ["bash", "-euo", "pipefail", "-c", block.code]
    else:
        command = [sys.executable, "-c", block.code]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, (
        f"{block.page}:{block.line}: the {block.language} block exited {result.returncode}:\n{block.code}\n{output}"
    )
