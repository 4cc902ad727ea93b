"""The README and the docs site stay true.

The README is short and built by docs/build_readme.py; the docs reference pages hold the tables
generated from the schema, the registries and the server's OpenAPI schema; the site builds with
`mkdocs build --strict` and not one warning. (tests/docs/ runs the code blocks of the README and
the tutorials.)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelforge.cli import app
from modelforge.reference import config_reference, http_reference, model_reference, task_reference

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
REFERENCE_PAGES = ROOT / "docs" / "site" / "reference"
REGENERATE = ".venv/bin/python docs/build_readme.py"
README_LINE_BUDGET = 200


def load_build_script():
    spec = importlib.util.spec_from_file_location("build_readme", ROOT / "docs" / "build_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("page", "build"),
    [
        ("config.md", config_reference),
        ("models.md", model_reference),
        ("tasks.md", task_reference),
        ("http.md", http_reference),
    ],
)
def test_reference_page_holds_the_generated_table(page: str, build) -> None:
    text = (REFERENCE_PAGES / page).read_text(encoding="utf-8")
    assert build() in text, f"docs/site/reference/{page} is stale: {REGENERATE}"


def test_reference_pages_are_what_the_build_script_writes() -> None:
    stale = [
        page.relative_to(ROOT).as_posix()
        for page, text in load_build_script().build_reference_pages().items()
        if page.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"stale reference pages {stale}: {REGENERATE}"


def test_readme_is_what_the_build_script_writes() -> None:
    assert load_build_script().build_readme() == README, (
        f"README.md differs from docs/readme/*.md and docs/site/reference/cli.md: edit those, then {REGENERATE}"
    )


def test_readme_stays_short() -> None:
    lines = README.count("\n")
    assert lines <= README_LINE_BUDGET, (
        f"README.md has {lines} lines, over the budget of {README_LINE_BUDGET}: move detail to the docs (docs/site/)"
    )


def test_every_cli_verb_has_an_example() -> None:
    import typer

    command = typer.main.get_command(app)
    verbs = list(command.commands)  # type: ignore[attr-defined]
    assert {"init", "train", "evaluate", "predict", "runs", "models", "tasks"} <= set(verbs)
    missing = [verb for verb in verbs if f"`modelforge {verb} " not in README and f"modelforge {verb}`" not in README]
    assert not missing, f"verbs without an example in the README: {missing}"


def test_setup_is_the_two_make_commands() -> None:
    assert "make demo" in README and "make test" in README


def test_docs_site_builds_strictly_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (it is in the dev extra)")
    pytest.importorskip("material", reason="mkdocs-material is not installed (it is in the dev extra)")
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
    result = subprocess.run(
        [*command, "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's end-of-life banner, not a problem of the site
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    assert not warnings, "mkdocs build warned:\n" + "\n".join(warnings)
    assert (site / "reference" / "config" / "index.html").exists()
    python_api = (site / "reference" / "python" / "index.html").read_text(encoding="utf-8")
    assert "show_progress" in python_api, "mkdocstrings rendered no signature of modelforge.train"
