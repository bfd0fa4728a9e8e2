"""Simulator fixtures: swagger schema validation and a frozen-clock server with an HTTP client."""

import json
from pathlib import Path

import httpx
import jsonschema
import pytest

from pi_platform_tests.simulator.support import FROZEN_NOW

# Definitions of the official 2018 SP1 swagger, vendored so the suite runs from a fresh clone.
SWAGGER = Path(__file__).with_name("swagger_definitions.json")


def _relax(node: object) -> object:
    """The swagger types .NET `object` properties (e.g. TimedValue.Value) as a bare {"type": "object"}, although
    they hold numbers, strings or digital-state objects; treat those as "any" and keep everything else strict."""
    if isinstance(node, dict):
        keys = {k for k in node if not k.startswith("x-") and k != "example"}
        if node.get("type") == "object" and keys == {"type"}:
            return {}
        return {k: _relax(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_relax(v) for v in node]
    return node


@pytest.fixture(scope="session")
def swagger() -> dict:
    return _relax(json.loads(SWAGGER.read_text()))  # type: ignore[return-value]


@pytest.fixture(scope="session")
def validate(swagger: dict):
    """validate(body, "Items[Element]") raises jsonschema.ValidationError on any mismatch."""

    def check(body: object, definition: str) -> None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": swagger["definitions"]}
        jsonschema.Draft4Validator(schema).validate(body)

    return check


@pytest.fixture
def frozen(make_simulator):
    """A 50-tag simulator whose clock is frozen at FROZEN_NOW, so ground truth is a constant."""
    return make_simulator(now=FROZEN_NOW)


@pytest.fixture
def http(frozen) -> httpx.Client:
    with httpx.Client(base_url=frozen.base_url + "/", timeout=30) as client:
        yield client
