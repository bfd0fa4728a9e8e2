"""The viewer's reads of the lake: bounded pages of filtered scans, newest snapshots, per-table figures.

Filters and column projections go into the Arrow dataset scan (partition pruning and Parquet statistics apply),
only the requested page becomes Python objects, and per-table figures (rows, newest data time) come from the
Delta log's file statistics (the newest time then read exactly from the rows at its millisecond), never a full
scan, so every answer stays bounded however many tags the plant has.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pi_platform.errors import PlatformError
from pi_platform.storage import DeltaStore
from pi_platform.storage.scan import scan_table
from pi_platform.storage.tables import TABLES, TableSpec

MAX_LIMIT = 500
DEFAULT_LIMIT = 100


class BadRequest(PlatformError):
    """A viewer query parameter is malformed; the message names it and says what is accepted."""


@dataclass(frozen=True)
class Page:
    offset: int = 0
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, offset: str | None, limit: str | None) -> "Page":
        try:
            page = cls(int(offset or 0), int(limit or DEFAULT_LIMIT))
        except ValueError:
            raise BadRequest("offset and limit must be whole numbers (e.g. offset=0&limit=100)") from None
        if page.offset < 0 or not 1 <= page.limit <= MAX_LIMIT:
            raise BadRequest(f"offset must be >= 0 and limit between 1 and {MAX_LIMIT}")
        return page

    def of(self, rows: pa.Table, sort: list[tuple[str, str]]) -> dict[str, Any]:
        """The page of `rows` in `sort` order, with the total so the client can page on."""
        shown = rows.sort_by(sort).slice(self.offset, self.limit) if rows.num_rows else rows
        return {"total": rows.num_rows, "offset": self.offset, "limit": self.limit, "rows": shown.to_pylist()}


def scan(store: DeltaStore, table: str, *, filter: ds.Expression | None, columns: list[str]) -> pa.Table:
    """Rows of `table` matching `filter`, only `columns`; empty (not an error) while the table does not exist.
    Read through `storage.scan`, which keeps files a MERGE wrote (`string_view` columns) readable."""
    if not store.exists(table):
        return TABLES[table].schema.empty_table().select(columns)
    return scan_table(store.table(table), filter=filter, columns=columns)


def _actions(store: DeltaStore, table: str) -> pa.Table:
    return pa.table(store.table(table).get_add_actions(flatten=True))


def partitions(store: DeltaStore, table: str) -> list[date]:
    """Partition days of `table`, newest first, from the Delta log (no data file is opened)."""
    if not store.exists(table):
        return []
    actions = _actions(store, table)
    column = f"partition.{TABLES[table].partition_column}"
    if not actions.num_rows or column not in actions.column_names:
        return []
    return sorted(set(actions[column].to_pylist()), reverse=True)


def latest_partition(store: DeltaStore, table: str) -> date | None:
    """Newest partition day of a daily-snapshot table."""
    days = partitions(store, table)
    return days[0] if days else None


def data_time_column(spec: TableSpec) -> str | None:
    """What "newest data" means for a table: its first timestamp column (value, frame or refusal time), else
    its partition day (snapshots, daily KPIs)."""
    for fld in spec.schema:
        if pa.types.is_timestamp(fld.type):
            return fld.name
    return spec.partition_column


def table_summary(store: DeltaStore, spec: TableSpec) -> dict[str, Any]:
    """Rows, Delta version, files, bytes, newest data time and last commit of one table, from its log."""
    if not store.exists(spec.name):
        return {"table": spec.name, "exists": False}
    dt = store.table(spec.name)
    actions = pa.table(dt.get_add_actions(flatten=True))
    column = data_time_column(spec)
    stat = f"partition.{column}" if column == spec.partition_column else f"max.{column}"
    newest: datetime | date | None = None
    if actions.num_rows and stat in actions.column_names:
        newest = pc.max(actions[stat]).as_py()
    if isinstance(newest, datetime) and column is not None:
        # Delta statistics keep milliseconds: read the exact maximum from the few rows around it.
        floor = pa.scalar(newest - timedelta(milliseconds=1), spec.schema.field(column).type)
        top = scan(store, spec.name, filter=ds.field(column) >= floor, columns=[column])
        newest = pc.max(top[column]).as_py() or newest
    history = dt.history(1)
    rows = pc.sum(actions["num_records"]).as_py() if actions.num_rows else 0
    return {
        "table": spec.name,
        "exists": True,
        "rows": int(rows or 0),
        "version": dt.version(),
        "files": actions.num_rows,
        "bytes": int(pc.sum(actions["size_bytes"]).as_py() or 0) if actions.num_rows else 0,
        "newest_data": newest,
        "newest_data_column": column,
        "last_commit_ms": history[0].get("timestamp") if history else None,
    }


def contains(column: str, text: str) -> ds.Expression:
    """Case-insensitive substring match, evaluated inside the scan."""
    return pc.match_substring(ds.field(column), text, ignore_case=True)
