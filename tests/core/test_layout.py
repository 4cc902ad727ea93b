"""Repository layout rules that pytest and the README rely on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_names_are_unique_across_folders() -> None:
    # the test folders are not packages, so pytest imports each module by its bare name
    names = Counter(path.name for path in TESTS.rglob("*.py") if path.name != "conftest.py")
    assert not [name for name, count in names.items() if count > 1]
