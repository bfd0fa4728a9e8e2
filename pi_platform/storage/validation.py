"""Split a batch into rows that may be committed and rows that go to quarantine, with reasons.

pandera validates the whole frame at once (vectorised checks, lazy mode collects every failure); only the
failing rows are then touched one by one to render their raw JSON, so cost stays per batch, not per value.
String columns reach pandas Arrow-backed (`StringDtype("pyarrow")`), not as one Python str per value: that
conversion alone used to cost more than every check together. The valid part is taken from the original Arrow
table by mask, so stored types are exactly the writer's.
"""

import copy
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from pi_platform.value_columns import REJECT_SCHEMA


_ARROW_STRINGS = {pa_arrow.string(): pd.StringDtype("pyarrow")}.get


@dataclass(frozen=True)
class Split:
    valid: pa_arrow.Table
    rejects: pa_arrow.Table  # REJECT_SCHEMA


def split_valid(table: pa_arrow.Table, schema: pa.DataFrameSchema, *, time_column: str | None = None) -> Split:
    """Validate `table` against `schema`; return the passing rows and one reject row per failing row."""
    if table.num_rows == 0:
        return Split(table, REJECT_SCHEMA.empty_table())
    frame = table.select([c for c in table.column_names if c in schema.columns]).to_pandas(types_mapper=_ARROW_STRINGS)
    try:
        _without_proven_unique(table, schema).validate(frame, lazy=True)
        return Split(table, REJECT_SCHEMA.empty_table())
    except SchemaErrors as errors:
        reasons = _reasons_by_row(errors.failure_cases, len(frame))
    bad = np.zeros(len(frame), dtype=bool)
    bad[list(reasons)] = True
    bad_rows = table.filter(pa_arrow.array(bad))
    rejects = pa_arrow.table(
        {
            "web_id": _column(bad_rows, "web_id"),
            "name": _column(bad_rows, "name"),
            "reason": [reasons[i] for i in sorted(reasons)],
            "raw": [orjson.dumps(row, default=str).decode() for row in bad_rows.to_pylist()],
            "timestamp": _times(bad_rows, time_column),
        },
        schema=REJECT_SCHEMA,
    )
    return Split(table.filter(pa_arrow.array(~bad)), rejects)


def _without_proven_unique(table: pa_arrow.Table, schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """`schema` minus its `unique` check when the rows are strictly ascending in those keys, which proves them
    unique at O(n). Extracted chunks are (tag, time, position)-ordered, and pandas' hashing of the keys was
    half of all validation time; anything not provably ordered keeps pandera's full check."""
    keys = schema.unique
    if not keys or table.num_rows < 2 or not all(k in table.column_names for k in keys):
        return schema
    ascending = np.zeros(table.num_rows - 1, dtype=bool)  # row i+1 > row i on the keys compared so far
    tied = np.ones(table.num_rows - 1, dtype=bool)  # row i+1 == row i on the keys compared so far
    for key in keys:
        codes = _ordinal(table[key])
        if codes is None:
            return schema
        ascending |= tied & (codes[1:] > codes[:-1])
        tied &= codes[1:] == codes[:-1]
    if not ascending.all():
        return schema
    stripped = copy.copy(schema)
    stripped.unique = None
    return stripped


def _ordinal(column: pa_arrow.ChunkedArray) -> np.ndarray | None:
    """Integers ordered like the column's runs: strings by first appearance (so a key seen again after another
    is out of order), timestamps and signed integers as themselves; None for nulls or other types."""
    if column.null_count:
        return None
    array = column.combine_chunks()
    kind = array.type
    if pa_arrow.types.is_string(kind) or pa_arrow.types.is_large_string(kind):
        return pc.dictionary_encode(array).indices.to_numpy()
    if pa_arrow.types.is_timestamp(kind) or pa_arrow.types.is_signed_integer(kind):
        return (array.view(pa_arrow.int64()) if kind.bit_width == 64 else array.cast(pa_arrow.int64())).to_numpy()
    return None


def _column(rows: pa_arrow.Table, name: str) -> pa_arrow.Array:
    if name in rows.column_names:
        return pc.cast(rows[name], pa_arrow.string()).combine_chunks()
    return pa_arrow.nulls(rows.num_rows, pa_arrow.string())


def _times(rows: pa_arrow.Table, column: str | None) -> pa_arrow.Array:
    if column and column in rows.column_names:
        return pc.cast(rows[column], pa_arrow.timestamp("us", tz="UTC")).combine_chunks()
    return pa_arrow.nulls(rows.num_rows, pa_arrow.timestamp("us", tz="UTC"))


def _reasons_by_row(failures: pd.DataFrame, n_rows: int) -> dict[int, str]:
    """Row index -> reason ('column: check' joined by '; ') for failing rows only, so a batch with a handful of
    failures costs a handful of entries; schema-wide failures hit every row."""
    labels: dict[int, list[str]] = {}
    everywhere: list[str] = []
    for column, check, index in zip(failures["column"], failures["check"], failures["index"]):
        label = f"{column}: {check}" if isinstance(column, str) and column else str(check)
        if index is None or (isinstance(index, float) and np.isnan(index)):
            everywhere.append(label)
        else:
            labels.setdefault(int(index), []).append(label)
    if everywhere:
        labels = {row: labels.get(row, []) + everywhere for row in range(n_rows)}
    return {row: "; ".join(dict.fromkeys(found)) for row, found in labels.items()}
