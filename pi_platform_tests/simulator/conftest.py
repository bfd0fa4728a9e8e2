"""Simulator test helpers: swagger schema validation, a frozen-clock server, JSON -> VALUE_SCHEMA parsing."""

import json
from datetime import datetime, timezone
from pathlib import Path

import httpx
import jsonschema
import pyarrow as pa
import pytest

from pi_platform.value_columns import VALUE_SCHEMA

# Definitions of the official 2018 SP1 swagger, vendored so the suite runs from a fresh clone.
SWAGGER = Path(__file__).with_name("swagger_definitions.json")
FROZEN_NOW = datetime(2024, 5, 2, 12, 0, tzinfo=timezone.utc)
DAY = ("2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z")


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


def items_to_table(items: list[dict], web_id: str, name: str, units: str) -> pa.Table:
    """Reference JSON -> VALUE_SCHEMA conversion, one value at a time (fine for test sizes)."""
    rows = []
    last_ts, position = None, 0
    for item in items:
        ts = datetime.fromisoformat(item["Timestamp"].replace("Z", "+00:00"))
        position = position + 1 if ts == last_ts else 0
        last_ts = ts
        value = item["Value"]
        row = {
            "web_id": web_id,
            "name": name,
            "timestamp": ts,
            "position": position,
            "value": None,
            "value_str": None,
            "digital_state": None,
            "digital_code": None,
            "is_system": False,
            "good": item["Good"],
            "questionable": item["Questionable"],
            "substituted": item["Substituted"],
            "annotated": item["Annotated"],
            "units": units,
        }
        if isinstance(value, dict):
            row.update(
                value_str=value["Name"],
                digital_state=value["Name"],
                digital_code=value["Value"],
                is_system=value["IsSystem"],
                value=None if value["IsSystem"] else float(value["Value"]),
            )
        elif isinstance(value, str):
            row["value_str"] = value
        else:
            row["value"] = float(value)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=VALUE_SCHEMA)
