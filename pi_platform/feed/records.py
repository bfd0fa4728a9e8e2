"""Feed rows as JSON-ready records: the one shape the WebSocket, `pi-platform tail` and MQTT payloads share.

Timestamps become ISO 8601 UTC strings (microseconds, `Z`) in Arrow, column-wise; NaN becomes null (JSON has
no NaN). The per-row dicts are made once, at the edge where JSON needs them.
"""

import orjson
import pyarrow as pa
import pyarrow.compute as pc

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # Arrow prints the microseconds of a `us` timestamp after %S


def iso_column(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.strftime(column, ISO_FORMAT)


def to_records(rows: pa.Table) -> list[dict]:
    columns = [iso_column(rows[name]) if pa.types.is_timestamp(rows.schema.field(name).type) else rows[name]
               for name in rows.column_names]
    return pa.table(columns, names=rows.column_names).to_pylist()


def values_message(rows: pa.Table) -> str:
    """`{"type": "values", "rows": [...]}`, the WebSocket message of one batch."""
    return orjson.dumps({"type": "values", "rows": to_records(rows)}).decode()
