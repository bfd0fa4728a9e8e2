"""Split a batch into rows that may be committed and rows that go to quarantine, with reasons.

pandera validates the whole frame at once (vectorised checks, lazy mode collects every failure); only the
failing rows are then touched one by one to render their raw JSON, so cost stays per batch, not per value.
The valid part is taken from the original Arrow table by mask, so stored types are exactly the writer's.
"""

from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

REJECT_COLUMNS = pa_arrow.schema(
    [
        pa_arrow.field("web_id", pa_arrow.string()),
        pa_arrow.field("reason", pa_arrow.string()),
        pa_arrow.field("raw", pa_arrow.string()),
        pa_arrow.field("timestamp", pa_arrow.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Split:
    valid: pa_arrow.Table
    rejects: pa_arrow.Table  # REJECT_COLUMNS


def split_valid(table: pa_arrow.Table, schema: pa.DataFrameSchema, *, time_column: str | None = None) -> Split:
    """Validate `table` against `schema`; return the passing rows and one reject row per failing row."""
    if table.num_rows == 0:
        return Split(table, REJECT_COLUMNS.empty_table())
    frame = table.select([c for c in table.column_names if c in schema.columns]).to_pandas()
    try:
        schema.validate(frame, lazy=True)
        return Split(table, REJECT_COLUMNS.empty_table())
    except SchemaErrors as errors:
        reasons = _reasons_by_row(errors.failure_cases, len(frame))
    bad = np.fromiter((r is not None for r in reasons), dtype=bool, count=len(reasons))
    bad_rows = table.filter(pa_arrow.array(bad))
    rejects = pa_arrow.table(
        {
            "web_id": bad_rows["web_id"] if "web_id" in bad_rows.column_names else pa_arrow.nulls(bad_rows.num_rows, pa_arrow.string()),
            "reason": [r for r in reasons if r is not None],
            "raw": [orjson.dumps(row, default=str).decode() for row in bad_rows.to_pylist()],
            "timestamp": _times(bad_rows, time_column),
        },
        schema=REJECT_COLUMNS,
    )
    return Split(table.filter(pa_arrow.array(~bad)), rejects)


def _times(rows: pa_arrow.Table, column: str | None) -> pa_arrow.Array:
    if column and column in rows.column_names:
        return pc.cast(rows[column], pa_arrow.timestamp("us", tz="UTC")).combine_chunks()
    return pa_arrow.nulls(rows.num_rows, pa_arrow.timestamp("us", tz="UTC"))


def _reasons_by_row(failures: pd.DataFrame, n_rows: int) -> list[str | None]:
    """One reason string per row ('column: check' joined by '; '); schema-wide failures hit every row."""
    reasons: list[list[str]] = [[] for _ in range(n_rows)]
    for column, check, index in zip(failures["column"], failures["check"], failures["index"]):
        label = f"{column}: {check}" if isinstance(column, str) and column else str(check)
        if index is None or (isinstance(index, float) and np.isnan(index)):
            for row in reasons:
                row.append(label)
        else:
            reasons[int(index)].append(label)
    return ["; ".join(dict.fromkeys(r)) if r else None for r in reasons]
