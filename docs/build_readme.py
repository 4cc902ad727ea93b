"""Build README.md and the generated tables of the docs site; tests/core/test_readme.py checks both are current.

    .venv/bin/python docs/build_readme.py

README.md is docs/readme/*.md in numeric order, with the CLI_VERBS placeholder replaced by the verb
table of docs/site/reference/cli.md (one table, shown in both places). The reference pages
docs/site/reference/*.md are prose around marker blocks; the tables between the markers
(`<!-- config-reference:begin -->` … `<!-- config-reference:end -->`; models, tasks and the HTTP API
likewise) are regenerated from `modelforge.reference`, never edited by hand. The Python API page is
rendered from docstrings by mkdocstrings when the site builds.
"""

from __future__ import annotations

from pathlib import Path

from modelforge.reference import with_references

ROOT = Path(__file__).resolve().parents[1]
README_SOURCES = ROOT / "docs" / "readme"
REFERENCE_PAGES = ROOT / "docs" / "site" / "reference"
CLI_PAGE = REFERENCE_PAGES / "cli.md"
CLI_BEGIN, CLI_END = "<!-- cli-verbs:begin -->", "<!-- cli-verbs:end -->"


def cli_verb_table() -> str:
    """The verb table of the command-line reference page, without its markers."""
    text = CLI_PAGE.read_text(encoding="utf-8")
    _, found, rest = text.partition(CLI_BEGIN)
    table, closed, _ = rest.partition(CLI_END)
    if not (found and closed):
        raise SystemExit(f"{CLI_PAGE}: the verb table must sit between {CLI_BEGIN} and {CLI_END}")
    return table.strip()


def build_readme() -> str:
    """README.md as the sources in docs/readme/ and the command-line reference page make it now."""
    sections = sorted(README_SOURCES.glob("*.md"), key=lambda path: int(path.name.split("-")[0]))
    text = "\n\n".join(path.read_text(encoding="utf-8").strip() for path in sections) + "\n"
    return text.replace("CLI_VERBS", cli_verb_table())


def build_reference_pages() -> dict[Path, str]:
    """Each docs reference page with its generated tables regenerated from the schema and registries."""
    return {page: with_references(page.read_text(encoding="utf-8")) for page in sorted(REFERENCE_PAGES.glob("*.md"))}


def write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def main() -> None:
    for page, text in build_reference_pages().items():
        write_if_changed(page, text)
    write_if_changed(ROOT / "README.md", build_readme())


if __name__ == "__main__":
    main()
