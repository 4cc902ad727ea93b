"""Assemble README.md from docs/readme/*.md (in name order) and the generated reference tables.

.venv/bin/python docs/build_readme.py
"""

from __future__ import annotations

from pathlib import Path

from modelforge.reference import REFERENCES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    sections = sorted((ROOT / "docs" / "readme").glob("*.md"), key=lambda path: int(path.name.split("-")[0]))
    parts = [path.read_text(encoding="utf-8").strip() for path in sections]
    text = "\n\n".join(parts) + "\n"
    for begin, build, end in REFERENCES:  # CONFIG_REFERENCE, MODEL_REFERENCE, TASK_REFERENCE
        placeholder = begin.removeprefix("<!-- ").split("-reference")[0].upper() + "_REFERENCE"
        text = text.replace(placeholder, f"{begin}\n{build()}\n{end}")
    temporary = ROOT / "README.md.tmp"
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(ROOT / "README.md")


if __name__ == "__main__":
    main()
