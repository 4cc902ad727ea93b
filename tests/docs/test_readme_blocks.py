"""Every shell and Python block of README.md and of the docs' getting-started page runs verbatim, in
order, in a fresh copy of the examples.

The reader's shell does not have the virtual environment on PATH: the quick start's
`source .venv/bin/activate` must put `modelforge` there, as it must for a new user.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from doc_blocks import ROOT, code_blocks, reader_environment, run_block, workspace

README = ROOT / "README.md"
GETTING_STARTED = ROOT / "docs" / "site" / "getting-started.md"
# The blocks a test cannot run, by their first command: they install, download, or serve until stopped.
NOT_RUN = {
    "make demo",
    ".venv/bin/pip uninstall -y torch",
    "modelforge serve runs/bc --port 8000",
}


@pytest.mark.parametrize("page", [README, GETTING_STARTED], ids=["readme", "getting-started"])
def test_only_the_blocks_that_install_download_or_serve_are_not_run(page: Path) -> None:
    blocks = code_blocks(page)
    skipped = {block.first_command for block in blocks if block.not_run is not None}
    assert skipped == NOT_RUN, f"{page.name}: blocks marked `<!-- not run -->` changed: run them, or list them here"
    unmarked = [block for block in blocks if block.language not in {"bash", "sh", "python", "text", "yaml", "json"}]
    assert not unmarked, f"{page.name}: blocks in a language the test neither runs nor knows: {unmarked}"


@pytest.mark.parametrize("page", [README, GETTING_STARTED], ids=["readme", "getting-started"])
def test_every_block_runs_verbatim(page: Path, tmp_path: Path) -> None:
    cwd = workspace(tmp_path)
    env = reader_environment(venv_on_path=False)
    ran = 0
    for block in code_blocks(page):
        if block.runnable:
            run_block(block, cwd, env)
            ran += 1
    assert ran >= 2, f"{page.name}: the quick start's shell and Python blocks should both run"
    assert (cwd / "preds.csv").exists() and (cwd / "report.html").exists()


def test_readme_links_point_at_files_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    links = [link for link in re.findall(r"\]\(([^)#\s]+)", text) if not link.startswith(("http://", "https://"))]
    missing = [link for link in links if not (ROOT / link).exists()]
    assert links and not missing, f"README links to missing files: {missing}"
