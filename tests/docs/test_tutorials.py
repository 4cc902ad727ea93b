"""Every shell and Python block of every tutorial runs as written, page by page, in a fresh workspace.

A tutorial's reader has done `make demo` and `source .venv/bin/activate`, so the virtual
environment is on PATH. Tutorials keep their runs small where they show them (a few epochs or
steps, said on the page), so what runs here is what a reader types.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_blocks import ROOT, code_blocks, reader_environment, run_block, workspace

TUTORIALS = ROOT / "docs" / "site" / "tutorials"
# The Python API tutorial is run, block by block, by tests/core/test_python_api.py.
RUN_ELSEWHERE = {"python-api.md"}
PAGES = sorted(page for page in TUTORIALS.glob("*.md") if page.name not in RUN_ELSEWHERE)
# Blocks a test cannot run, by page and first command: each page says why above the block.
NOT_RUN: dict[str, set[str]] = {
    "generation.md": {"modelforge train examples/quickstart.yaml --out runs/digits-classifier"},
}


def test_every_tutorial_has_runnable_code() -> None:
    assert {
        "tables.md",
        "images.md",
        "text.md",
        "gpt.md",
        "recommendation.md",
        "generation.md",
        "audio.md",
        "seq2seq.md",
        "detection.md",
    } <= {page.name for page in PAGES}
    for page in PAGES:
        blocks = code_blocks(page)
        assert any(block.runnable for block in blocks), f"{page.name}: no block the tests run"
        skipped = {block.first_command for block in blocks if block.not_run is not None}
        assert skipped == NOT_RUN.get(page.name, set()), f"{page.name}: blocks marked `<!-- not run -->` changed"


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_tutorial_runs_as_written(page: Path, tmp_path: Path) -> None:
    cwd = workspace(tmp_path)
    env = reader_environment(venv_on_path=True)
    for block in code_blocks(page):
        if block.runnable:
            run_block(block, cwd, env)
