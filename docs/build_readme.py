"""Assemble README.md from docs/readme/*.md (in name order) and the generated reference tables.

.venv/bin/python docs/build_readme.py
"""

from __future__ import annotations

from pathlib import Path

from modelforge.reference import CONFIG_BEGIN, CONFIG_END, MODELS_BEGIN, MODELS_END, config_reference, model_reference

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    sections = sorted((ROOT / "docs" / "readme").glob("*.md"), key=lambda path: int(path.name.split("-")[0]))
    parts = [path.read_text(encoding="utf-8").strip() for path in sections]
    text = "\n\n".join(parts) + "\n"
    text = text.replace("CONFIG_REFERENCE", f"{CONFIG_BEGIN}\n{config_reference()}\n{CONFIG_END}")
    text = text.replace("MODEL_REFERENCE", f"{MODELS_BEGIN}\n{model_reference()}\n{MODELS_END}")
    temporary = ROOT / "README.md.tmp"
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(ROOT / "README.md")


if __name__ == "__main__":
    main()
