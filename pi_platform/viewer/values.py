"""The newest stored value of a page of streams: from `stream_values` or `recorded_values`, whichever is newer.

A stream's latest stored value is its row with the greatest (timestamp, position): the last of several values
PI holds at one timestamp, with its digital state and flags as stored. `recorded_values` is read newest day
first and stops as soon as every asked stream has a value there (an older day cannot hold a newer one), so
the read costs one or two partitions, not the table.
"""

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import RECORDED_VALUES, STREAM_VALUES
from pi_platform.viewer.lake import partitions, scan

SHOWN = ["web_id", "timestamp", "position", "value", "value_str", "digital_state", "is_system", "good",
         "questionable", "substituted", "annotated", "units"]
# Days of recorded_values searched for a stream without a value on the newest day (a tag dead for longer
# shows no stored value rather than making the page scan the whole table).
RECORDED_DAYS = 7


def newest_per_stream(rows: pa.Table) -> pa.Table:
    """One row per web_id: the one with the greatest (timestamp, position), every column kept as is."""
    if rows.num_rows == 0:
        return rows
    ordered = rows.sort_by([("web_id", "ascending"), ("timestamp", "ascending"), ("position", "ascending")])
    keep_nulls = pc.ScalarAggregateOptions(skip_nulls=False)
    others = [c for c in rows.column_names if c != "web_id"]
    newest = ordered.group_by("web_id", use_threads=False).aggregate([(c, "last", keep_nulls) for c in others])
    return newest.rename_columns(["web_id" if c == "web_id" else c.removesuffix("_last") for c in newest.column_names])


def _recorded(store: DeltaStore, web_ids: list[str]) -> pa.Table:
    found: list[pa.Table] = []
    remaining = set(web_ids)
    for day in partitions(store, RECORDED_VALUES.name)[:RECORDED_DAYS]:
        if not remaining:
            break
        rows = scan(store, RECORDED_VALUES.name, columns=SHOWN,
                    filter=(ds.field("event_date") == pa.scalar(day)) & ds.field("web_id").isin(sorted(remaining)))
        found.append(rows)
        remaining -= set(pc.unique(rows["web_id"]).to_pylist())
    return pa.concat_tables(found) if found else RECORDED_VALUES.schema.empty_table().select(SHOWN)


def latest_values(store: DeltaStore, web_ids: list[str]) -> dict[str, dict[str, Any]]:
    """web_id -> its newest stored value row (plus `source`: the table it came from); streams without one
    are absent."""
    if not web_ids:
        return {}
    live = newest_per_stream(scan(store, STREAM_VALUES.name, columns=SHOWN, filter=ds.field("web_id").isin(web_ids)))
    batch = newest_per_stream(_recorded(store, web_ids))
    latest: dict[str, dict[str, Any]] = {}
    for source, table in ((RECORDED_VALUES.name, batch), (STREAM_VALUES.name, live)):
        for row in table.to_pylist():
            held = latest.get(row["web_id"])
            if held is None or (row["timestamp"], row["position"]) >= (held["timestamp"], held["position"]):
                latest[row["web_id"]] = {**row, "source": source}
    return latest

