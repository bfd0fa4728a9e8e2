"""Constants and a reference JSON -> VALUE_SCHEMA converter shared by the simulator tests."""

from datetime import datetime, timezone

import pyarrow as pa

from pi_platform.value_columns import VALUE_SCHEMA

FROZEN_NOW = datetime(2024, 5, 2, 12, 0, tzinfo=timezone.utc)
DAY = ("2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z")


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
