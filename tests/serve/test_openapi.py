"""schemathesis against /openapi.json of a live server: no 5xx, every answer matches the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from modelforge.serve.app import ServeSettings, create_app
from modelforge.serve.services import load_services


@pytest.fixture(scope="module")
def live_url(
    digits_run: Path, diabetes_run: Path, gpt_run: Path, recommend_run: Any, vae_run: Any, serve_live
) -> Iterator[str]:
    runs = [f"digits={digits_run}", f"diabetes={diabetes_run}", f"bard={gpt_run}"]
    services = load_services([*runs, f"films={recommend_run.path}", f"faces={vae_run.path}"])
    with serve_live(create_app(services, ServeSettings(max_new_tokens=16, timeout_s=10))) as url:
        yield url


# The schema does not depend on the models served, so it is read from an app without any.
schema = schemathesis.openapi.from_dict(create_app({}).openapi())
NAMES = ("digits", "diabetes", "bard", "films", "faces", "nope")


@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Any, live_url: str) -> None:
    if case.path_parameters and "name" in case.path_parameters:
        # Random names would only ever meet 404; send most cases to a served model of each kind.
        case.path_parameters["name"] = NAMES[len(repr(case.body)) % len(NAMES)]
    # Every check but "schema-valid data is accepted": which columns a model reads is not in the
    # static schema (records are objects of any columns), so a 422 for a missing column is right.
    case.call_and_validate(base_url=live_url, excluded_checks=[positive_data_acceptance])
