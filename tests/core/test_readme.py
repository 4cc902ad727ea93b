"""The README stays true: its reference tables are the generated ones, every CLI verb has an example."""

from __future__ import annotations

from pathlib import Path

from modelforge.cli import app
from modelforge.reference import config_reference, model_reference, task_reference

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_reference_tables_match_the_schema_and_registry() -> None:
    assert config_reference() in README, (
        "README config reference is stale: python -m modelforge.reference --write README.md"
    )
    assert model_reference() in README, (
        "README model reference is stale: python -m modelforge.reference --write README.md"
    )
    assert task_reference() in README, (
        "README task reference is stale: python -m modelforge.reference --write README.md"
    )


def test_every_cli_verb_has_an_example() -> None:
    import typer

    command = typer.main.get_command(app)
    verbs = list(command.commands)  # type: ignore[attr-defined]
    assert {"init", "train", "evaluate", "predict", "runs", "models"} <= set(verbs)
    missing = [verb for verb in verbs if f"`modelforge {verb} " not in README and f"modelforge {verb}`" not in README]
    assert not missing, f"verbs without an example in the README: {missing}"


def test_setup_is_the_two_make_commands() -> None:
    assert "make demo" in README and "make test" in README
