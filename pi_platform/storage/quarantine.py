"""The quarantine table: every row that PI returned or a writer built but could not commit, with why.

Quarantine rows are replaced per (table, day range) exactly like the data they belong to, so a rerun of a
day shows that day's current problems, not an accumulation of every past attempt.
"""

from collections.abc import Sequence
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from pi_platform import plantday
from pi_platform.storage.store import DeltaStore, TableInfo
from pi_platform.storage.tables import QUARANTINE
from pi_platform.value_columns import as_rejects


def quarantine_rows(
    rejects: pa.Table, *, table_name: str, start: date, end: date, run_id: str | None = None
) -> pa.Table:
    """Quarantine-table rows for `rejects` (REJECT_SCHEMA; name and timestamp may be absent); each is dated by the
    plant's day of its own timestamp when it has one inside [start, end), else by `start`, so it lands in the run's partition range."""
    rejects = as_rejects(rejects)
    n = rejects.num_rows
    own = plantday.local_days(rejects["timestamp"], plantday.zone())
    inside = pc.and_(pc.greater_equal(own, pa.scalar(start)), pc.less(own, pa.scalar(end)))
    event_date = pc.if_else(pc.fill_null(inside, False), own, pa.scalar(start))
    return pa.table(
        {
            "table_name": pa.array([table_name] * n, pa.string()),
            "event_date": event_date,
            "web_id": rejects["web_id"],
            "reason": rejects["reason"],
            "raw": rejects["raw"],
            "detected_at": pa.array([datetime.now(timezone.utc)] * n, pa.timestamp("us", tz="UTC")),
            "run_id": pa.array([run_id] * n, pa.string()),
        },
        schema=QUARANTINE.schema,
    )


def replace_quarantine(
    store: DeltaStore, rejects: pa.Table, *, table_name: str, start: date, end: date, run_id: str | None = None,
    web_ids: Sequence[str] | None = None,
) -> TableInfo:
    """Replace the quarantine rows of `table_name` for days [start, end) (only those of `web_ids` when given: a
    run that re-read some tags of a day) by `rejects` (possibly none)."""
    return store.overwrite_range(
        QUARANTINE.name,
        quarantine_rows(rejects, table_name=table_name, start=start, end=end, run_id=run_id),
        partition_column="event_date",
        start=start,
        end=end,
        partition_by=["table_name", "event_date"],
        where={"table_name": table_name, **({"web_id": list(web_ids)} if web_ids is not None else {})},
    )


def read_quarantine(store: DeltaStore, *, table_name: str, start: date, end: date) -> pa.Table:
    if not store.exists(QUARANTINE.name):
        return QUARANTINE.empty()
    rows = store.read_range(QUARANTINE.name, "event_date", start, end)
    return rows.filter(pc.equal(rows["table_name"], table_name))
