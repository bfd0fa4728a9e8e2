"""What every materialisation shows in the UI: size, shape, time range, Delta version, a preview, a chart, and a
link to the table in the web viewer.

`dagster/last_updated_timestamp` is the newest *event* time in the written data, not the run time, so
freshness reflects how current the data is (a backfill of last year does not make the table look fresh).
"""

from datetime import datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform import settings
from pi_platform.batch.window import DayWindow
from pi_platform.storage import TableInfo

_BAR = "█"
_PREVIEW_ROWS = 5


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=str(f.type),
                description=(f.metadata or {}).get(b"doc", b"").decode() or None,
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in schema
        ]
    )


def table_metadata(
    data: pa.Table,
    info: TableInfo,
    schema: pa.Schema,
    window: DayWindow,
    *,
    time_column: str | None = None,
    rows: int | None = None,
    time_range: tuple[datetime, datetime] | None = None,
) -> dict[str, object]:
    """Metadata for a write of `data` (or of a sample of it, with the true count in `rows` and the true
    oldest/newest event times in `time_range`)."""
    meta: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(data.num_rows if rows is None else rows),
        "dagster/column_schema": column_schema(schema),
        "dagster/uri": dg.MetadataValue.path(info.uri),
        "partition_window": window.label,
        "delta_version": dg.MetadataValue.int(info.version),
        "delta_files": dg.MetadataValue.int(info.num_files),
        "delta_bytes": dg.MetadataValue.int(info.size_bytes),
        "preview": dg.MetadataValue.md(preview(data)),
        "viewer": dg.MetadataValue.url(viewer_link(info.table)),
    }
    if rows is None and "web_id" in data.column_names:
        meta["distinct_web_ids"] = dg.MetadataValue.int(pc.count_distinct(data["web_id"]).as_py())
    if time_range is None and time_column and data.num_rows:
        time_range = (pc.min(data[time_column]).as_py(), pc.max(data[time_column]).as_py())
    if time_range and time_range[1] is not None:
        oldest, newest = time_range
        meta["time_range"] = f"{oldest.isoformat()} .. {newest.isoformat()}"
        meta["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(newest)
    return meta


def viewer_link(table: str) -> str:
    """The web viewer's page for `table` (`pi-platform viewer`, also served by `pi-platform up`)."""
    return f"{settings.viewer_url()}/tables/{table}"


def preview(data: pa.Table) -> str:
    if data.num_rows == 0:
        return "_no rows_"
    frame = data.slice(0, _PREVIEW_ROWS).to_pandas()
    return frame.to_markdown(index=False)


def counts_chart(times: pa.ChunkedArray | pa.Array, *, unit: str, title: str, width: int = 30) -> str:
    """A markdown bar chart of row counts per `unit` ('hour' or 'day'): readable at a glance in the UI,
    and gaps (an hour with no data) stand out."""
    buckets = pc.floor_temporal(times, unit=unit)
    counts = pa.table({"bucket": buckets}).group_by("bucket").aggregate([("bucket", "count")]).sort_by("bucket")
    return bar_chart(counts["bucket"].to_pylist(), counts["bucket_count"].to_pylist(), unit=unit, title=title, width=width)


def bar_chart(labels: list[datetime], values: list[int], *, unit: str, title: str, width: int = 30) -> str:
    if not values:
        return f"**{title}**\n\n_no rows_"
    peak = max(values)
    one_day = len({label.date() for label in labels}) == 1
    fmt = "%H:%M" if unit == "hour" and one_day else "%Y-%m-%d %H:%M" if unit == "hour" else "%Y-%m-%d"
    lines = [f"**{title}**", "", f"| {unit} | rows | |", "|---|---:|---|"]
    for label, value in zip(labels, values):
        lines.append(f"| {label.strftime(fmt)} | {value} | {_BAR * max(1, round(width * value / peak))} |")
    return "\n".join(lines)
