"""Every shell and Python block of every tutorial runs as written, page by page, in a fresh workspace.

A tutorial's reader has done `make demo` and `source .venv/bin/activate`, so the virtual
environment is on PATH. Tutorials keep their runs small where they show them (a few epochs or
steps, said on the page), so what runs here is what a reader types.

The pages are independent and every process they start uses one CPU thread, so the selected pages
start together, one per core (at most four at once): on two cores the ten pages take about half the
time they take one after another. Each page's test waits for its own page and reports its failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
AT_ONCE = max(1, min(4, len(os.sched_getaffinity(0))))


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


def run_page(page: Path, folder: Path) -> None:
    cwd = workspace(folder)
    env = reader_environment(venv_on_path=True)
    for block in code_blocks(page):
        if block.runnable:
            run_block(block, cwd, env)


@pytest.fixture(scope="module")
def page_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[None]]]:
    """The pages this session's selected tests read, started at once on a pool of AT_ONCE workers."""
    here = Path(__file__)
    selected = [
        item.callspec.params["page"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.path == here
        and item.originalname == "test_tutorial_runs_as_written"
    ]
    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        runs = {page.name: pool.submit(run_page, page, tmp_path_factory.mktemp(page.stem)) for page in selected}
        yield runs
        for run in runs.values():
            run.cancel()  # pages not yet started when the session stops early (-x) are not run


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_tutorial_runs_as_written(page: Path, page_runs: dict[str, Future[None]]) -> None:
    page_runs[page.name].result()
