"""The Arrow schema every PI value travels in: client output, simulator ground truth, Delta tables.

One schema end to end is what lets tests compare the client against the simulator with `Table.equals`,
and lets `recorded_values` and `stream_values` share columns. A PI value can be a number, a string, a
digital state `{Name, Value, IsSystem}` or a system state; each lands in its own typed column so nothing
is cast away (peers lose digital states by casting to float).

Timestamps are microseconds UTC because Delta Lake stores microseconds; PI's 100 ns ticks beyond that are
rare and, if two values collapse onto one microsecond, `position` still keeps them apart.
"""

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

VALUE_FIELDS: list[pa.Field] = [
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("timestamp", TIMESTAMP, nullable=False),
    # 0-based order among values of the same stream at the same timestamp, as PI returned them.
    pa.field("position", pa.int32(), nullable=False),
    pa.field("value", pa.float64()),  # numeric value; digital (non-system) states carry their code here too
    pa.field("value_str", pa.string()),  # String points; for digital states the state name
    pa.field("digital_state", pa.string()),  # state name when the value is a digital or system state
    pa.field("digital_code", pa.int32()),
    pa.field("is_system", pa.bool_(), nullable=False),
    pa.field("good", pa.bool_(), nullable=False),
    pa.field("questionable", pa.bool_(), nullable=False),
    pa.field("substituted", pa.bool_(), nullable=False),
    pa.field("annotated", pa.bool_(), nullable=False),
    pa.field("units", pa.string()),
]

VALUE_SCHEMA = pa.schema(VALUE_FIELDS)
VALUE_KEY = ("web_id", "timestamp", "position")


def empty_values() -> pa.Table:
    return VALUE_SCHEMA.empty_table()


def sort_values(table: pa.Table) -> pa.Table:
    """Canonical order for comparisons: by stream, time, then position within the timestamp."""
    return table.sort_by([("web_id", "ascending"), ("timestamp", "ascending"), ("position", "ascending")])


# The one shape of everything refused on the way to a table: items PI returned that cannot become a value row
# (per-value Errors, unparseable timestamps) and rows failing validation. They are kept, never dropped: the
# batch and stream writers put them in the quarantine table with the reason.
REJECT_SCHEMA = pa.schema(
    [
        pa.field("web_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),  # the item's JSON exactly as received (or as built)
        pa.field("timestamp", TIMESTAMP),  # the row's own time when known: dates its quarantine partition
    ]
)


def as_rejects(table: pa.Table) -> pa.Table:
    """`table` in REJECT_SCHEMA; the optional columns it lacks (name, timestamp) are filled with nulls."""
    columns = [table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in REJECT_SCHEMA]
    return pa.table(columns, names=REJECT_SCHEMA.names).cast(REJECT_SCHEMA)
