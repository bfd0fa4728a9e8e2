"""PI recorded values -> validated Delta, streamed: the code path of `recorded_values` and of the benchmark.

The async client yields ValueBatch chunks in a background event loop (`recorded_chunks`), or reader processes
send them (`recorded_processes`); this thread validates them a few at a time and feeds a RecordBatchReader that
the store writes as it reads (`storage.datafiles`), so a day (or a backfill range) of any number of tags is ONE
range-overwrite commit with memory bounded by a few chunks. Rows PI refused (per-value Errors) and rows failing
the schema are collected and replace the window's quarantine rows after the commit.

No Dagster imports: the benchmark and scripts call `extract_recorded` directly.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pandera.api.pandas.container import DataFrameSchema

from pi_platform.batch.recorded_processes import chunks_in_processes
from pi_platform.client import PIWebAPIConfig, ValueBatch
from pi_platform.storage import DeltaStore, TableInfo, replace_quarantine, split_valid
from pi_platform.storage import schemas
from pi_platform.storage.tables import RECORDED_VALUES, TableSpec
from pi_platform.batch.window import DayWindow
from pi_platform.value_columns import REJECT_SCHEMA

_VALIDATE_ROWS = 250_000  # rows per pandera call at most ~4 responses (see `validated`)


@dataclass(frozen=True)
class Extracted:
    info: TableInfo
    rows: int
    quarantined: int
    quarantine_reasons: dict[str, int]


def extract_recorded(
    config: PIWebAPIConfig, store: DeltaStore, web_ids: Sequence[str], window: DayWindow, *, run_id: str | None = None,
    processes: int = 1,
) -> Extracted:
    """Replace `recorded_values` for the window's days by what PI holds for `web_ids` now. `processes` > 1 reads
    PI in that many processes less this one (`recorded_processes`), which validates and writes meanwhile."""
    reading = Reading()
    return commit_values(store, read_valid(config, web_ids, window, reading, processes), reading, window, run_id=run_id)


@dataclass
class Reading:
    """What a `read_valid` stream has seen so far: rows passed on, rows refused, and the error that stopped it."""

    rows: int = 0
    rejects: list[pa.Table] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def refused(self) -> pa.Table:
        return pa.concat_tables(self.rejects) if self.rejects else REJECT_SCHEMA.empty_table()


def read_valid(config: PIWebAPIConfig, web_ids: Sequence[str], window: DayWindow, reading: Reading,
               processes: int = 1) -> Iterator[pa.RecordBatch]:
    """PI's recorded values of `web_ids` in the window, validated a few chunks at a time, as RECORDED_VALUES
    batches; refused rows go to `reading.rejects`. Shared by the one-process extraction and the sharded one. The
    chunks are read by `processes` - 1 reader processes, or here when that is none (`chunks_in_processes`)."""
    try:
        yield from validated(chunks_in_processes(config, web_ids, window, processes - 1), window, reading)
    except BaseException as exc:
        reading.errors.append(exc)
        raise


def validated(batches: Iterable[ValueBatch], window: DayWindow, reading: Reading) -> Iterator[pa.RecordBatch]:
    """The client's chunks, validated a few at a time, as RECORDED_VALUES batches; refused rows go to `reading`.

    Why a few at a time: a pandera call costs ~9 ms whatever its size, as much as validating ~70k values, and a
    response holds ~60k. Chunks are grouped only while their tags differ, so a group stays (tag, time,
    position)-ordered and `split_valid` still proves its keys unique in O(n) (a tag seen again, in a later
    window or page, starts a new group)."""
    schema = schemas.recorded_values(window.start_time, window.end_time)
    group: list[pa.Table] = []
    tags: set[str] = set()
    rows = 0
    for batch in batches:
        if batch.rejects.num_rows:
            reading.rejects.append(batch.rejects)
        if not batch.values.num_rows:
            continue
        these = set(pc.unique(batch.values["web_id"]).to_pylist())
        if group and not tags.isdisjoint(these):
            yield from _validate(group, schema, window, reading)
            group, tags, rows = [], set(), 0
        group.append(batch.values)
        tags |= these
        rows += batch.values.num_rows
        if rows >= _VALIDATE_ROWS:
            yield from _validate(group, schema, window, reading)
            group, tags, rows = [], set(), 0
    if group:
        yield from _validate(group, schema, window, reading)


def _validate(group: list[pa.Table], schema: DataFrameSchema, window: DayWindow,
              reading: Reading) -> Iterator[pa.RecordBatch]:
    values = pa.concat_tables(group) if len(group) > 1 else group[0]
    split = split_valid(with_event_date(in_window(values, window), window), schema, time_column="timestamp")
    if split.rejects.num_rows:
        reading.rejects.append(split.rejects)
    reading.rows += split.valid.num_rows
    yield from split.valid.to_batches()


def commit_values(
    store: DeltaStore, batches: Iterator[pa.RecordBatch], reading: Reading, window: DayWindow, *, run_id: str | None,
    only: Sequence[str] | None = None, table: TableSpec = RECORDED_VALUES,
) -> Extracted:
    """Stream `batches` into ONE range-overwrite commit of the window's days of `table` (any per-tag daily table:
    recorded values, summaries), then replace its quarantine rows by `reading`'s rejects (complete once `batches`
    is exhausted). With `only` (WebIDs), just those tags' rows of the days are replaced and every other tag's stay
    (late-edit healing re-reads only the edited tags)."""
    reader = pa.RecordBatchReader.from_batches(table.schema, batches)
    try:
        info = store.overwrite_range(
            table.name, reader, partition_column="event_date", start=window.first, end=window.end,
            where={"web_id": list(only)} if only is not None else None,
        )
    except Exception:
        if reading.errors:  # the reader failed (PI unreachable, bad credentials...): nothing was committed; say why
            raise reading.errors[0] from None
        raise
    refused = reading.refused()
    replace_quarantine(store, refused, table_name=table.name, start=window.first, end=window.end, run_id=run_id,
                       web_ids=only)
    reasons = refused.group_by("reason").aggregate([("reason", "count")]).to_pylist() if refused.num_rows else []
    return Extracted(info, reading.rows, refused.num_rows, {r["reason"]: r["reason_count"] for r in reasons})


def in_window(values: pa.Table, window: DayWindow) -> pa.Table:
    """Drop values stamped exactly at the window's end: PI's range includes both bounds, but that instant
    is the first of the next day's partition, whose run reads it. Most chunks hold no such value and are
    passed on as they are, told by their latest time alone; the others hold a few (one per tag with a value at
    midnight) and keep zero-copy slices around them: a filter copied every column of the chunk (~0.04 µs a
    value, 3 % of a 10,000-tag extraction's CPU) to drop those rows. The client rejects an unreadable time as it
    builds the chunk; a null one that came anyway stays, for the schema to quarantine, never silently dropped."""
    end = pa.scalar(window.end_time, values["timestamp"].type)
    latest = pc.max(values["timestamp"])
    if latest.is_valid and latest.value < end.value:
        return values
    outside = np.flatnonzero(pc.greater_equal(values["timestamp"], end).to_numpy(zero_copy_only=False))
    bounds = zip(np.concatenate([[0], outside + 1]).tolist(), np.append(outside, values.num_rows).tolist())
    return pa.concat_tables([values.slice(lo, hi - lo) for lo, hi in bounds if hi > lo] or [values.slice(0, 0)])


def with_event_date(values: pa.Table, window: DayWindow) -> pa.Table:
    """VALUE_SCHEMA rows + the plant's day partition column, in RECORDED_VALUES' schema."""
    return values.append_column("event_date", window.days_of(values["timestamp"])).cast(RECORDED_VALUES.schema)
