"""Per-tag statistics of a stored window of `recorded_values`, computed batch by batch from Delta.

The checks look at what was committed, not at what the run believes it wrote, and scanning in batches keeps
memory flat however many tags a day holds.
"""

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pi_platform.batch.window import DayWindow
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import RECORDED_VALUES

_RANGED_TYPES = ("Float16", "Float32", "Float64", "Int16", "Int32")


@dataclass(frozen=True)
class WindowStats:
    rows: int
    per_tag: pa.Table  # web_id, rows
    per_hour: pa.Table  # hour, rows
    out_of_range: pa.Table  # web_id, name, rows, min, max, zero, span
    newest: object  # datetime | None
    oldest: object


def window_stats(store: DeltaStore, window: DayWindow, selected: pa.Table) -> WindowStats:
    """Scan the window; `selected` (web_id, name, point_type, zero, span) defines each tag's valid range."""
    dataset = store.table(RECORDED_VALUES.name).to_pyarrow_dataset()
    day = ds.field("event_date")
    filter_ = (day >= pa.scalar(window.first)) & (day < pa.scalar(window.end))
    ranged = selected.filter(pc.is_in(selected["point_type"], value_set=pa.array(_RANGED_TYPES)))
    ranged = ranged.append_column("top", pc.add(ranged["zero"], ranged["span"]))
    tags, hours, outside = [], [], []
    newest = oldest = None
    rows = 0
    for batch in dataset.to_batches(columns=["web_id", "timestamp", "value", "is_system"], filter=filter_):
        if batch.num_rows == 0:
            continue
        table = pa.Table.from_batches([batch])
        rows += table.num_rows
        tags.append(table.group_by("web_id").aggregate([("web_id", "count")]))
        hour = pc.floor_temporal(table["timestamp"], unit="hour")
        hours.append(pa.table({"hour": hour}).group_by("hour").aggregate([("hour", "count")]))
        hi, lo = pc.max(table["timestamp"]).as_py(), pc.min(table["timestamp"]).as_py()
        newest = hi if newest is None or hi > newest else newest
        oldest = lo if oldest is None or lo < oldest else oldest
        numeric = table.filter(pc.and_(pc.invert(table["is_system"]), pc.is_valid(table["value"])))
        joined = numeric.join(ranged, "web_id", join_type="inner")
        if joined.num_rows:
            bad = pc.or_(pc.less(joined["value"], joined["zero"]), pc.greater(joined["value"], joined["top"]))
            outside.append(joined.filter(bad).select(["web_id", "value"]))
    per_tag = _sum(tags, "web_id", "web_id_count", pa.string())
    per_hour = _sum(hours, "hour", "hour_count", pa.timestamp("us", tz="UTC")).sort_by("hour")
    out = pa.concat_tables(outside) if outside else pa.table({"web_id": pa.array([], pa.string()), "value": pa.array([], pa.float64())})
    out = out.group_by("web_id").aggregate([("value", "count"), ("value", "min"), ("value", "max")])
    out = out.join(ranged.select(["web_id", "name", "zero", "span"]), "web_id").rename_columns(
        {"value_count": "rows", "value_min": "min", "value_max": "max"}
    )
    return WindowStats(rows, per_tag, per_hour, out.sort_by("name"), newest, oldest)


def _sum(parts: list[pa.Table], key: str, count: str, key_type: pa.DataType) -> pa.Table:
    if not parts:
        return pa.table({key: pa.array([], key_type), "rows": pa.array([], pa.int64())})
    return pa.concat_tables(parts).group_by(key).aggregate([(count, "sum")]).rename_columns({f"{count}_sum": "rows"})
