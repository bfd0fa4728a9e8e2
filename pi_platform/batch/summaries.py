"""PI's summaries and interpolated values -> validated Delta: the code path of `recorded_summaries` and
`interpolated_values`, without Dagster.

PI computes the numbers (`client.summaries`); this module only asks for the right ones, shapes PI's long
answer (one item per stream, type and interval) into one row per stream and interval, validates, and replaces
the window's days in one commit. Tags are read a slice at a time and streamed into the writer, so memory
does not grow with the number of tags.
"""

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pandera.pandas as pandera

from pi_platform.batch.recorded import Extracted, Reading, commit_values
from pi_platform.batch.recorded_chunks import iterate_in_thread
from pi_platform.batch.window import DayWindow
from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.client.summaries import CALCULATION_BASES
from pi_platform.errors import ConfigError
from pi_platform.pitime import PITimeError, parse_interval, to_us
from pi_platform.storage import DeltaStore, schemas, split_valid
from pi_platform.storage.tables import INTERPOLATED_VALUES, RECORDED_SUMMARIES, TableSpec
from pi_platform.value_columns import REJECT_SCHEMA

# Table column -> PI summaryType, read with the configured calculation basis.
SUMMARY_COLUMNS = {
    "average": "Average",
    "minimum": "Minimum",
    "maximum": "Maximum",
    "std_dev": "StdDev",
    "range": "Range",
    "percent_good": "PercentGood",
}
_TAGS_PER_READ = 500  # a slice of tags per client call: bounds memory, keeps each answer a few MB
_KEYS = ["web_id", "interval_start"]


def interval(text: str, what: str) -> timedelta:
    """A fixed AFTimeSpan (`1h`, `15m`) or a one-line ConfigError naming the setting."""
    try:
        step = parse_interval(text)
    except PITimeError as exc:
        raise ConfigError(f"{what}={text!r}: {exc}") from None
    if step <= timedelta(0):
        raise ConfigError(f"{what}={text!r} must be longer than zero (e.g. 1h)")
    return step


def calculation_basis(text: str) -> str:
    """PI's spelling of a calculationBasis, or a one-line ConfigError listing the choices."""
    found = next((b for b in CALCULATION_BASES if b.lower() == text.strip().lower()), None)
    if found is None:
        raise ConfigError(f"calculation basis {text!r} is not one PI knows: use one of {', '.join(CALCULATION_BASES)}")
    return found


def extract_summaries(config: PIWebAPIConfig, store: DeltaStore, web_ids: Sequence[str], window: DayWindow, *,
                      duration: timedelta, basis: str, run_id: str | None = None) -> Extracted:
    """Replace `recorded_summaries` for the window's days by PI's summaries of `web_ids`."""
    start, end = window.start_time, window.end_time

    async def read(client: PIWebAPIClient, part: list[str]) -> tuple[pa.Table, pa.Table]:
        main = await client.summaries(part, start, end, duration=duration, types=list(SUMMARY_COLUMNS.values()),
                                      basis=basis)
        # Count in events whatever the basis: a time-weighted Count is seconds of good data, which percent_good says.
        events = await client.summaries(part, start, end, duration=duration, types=["Count"], basis="EventWeighted")
        shaped = shape_summaries(main.values, events.values, window, duration, basis)
        return shaped, pa.concat_tables([main.rejects, events.rejects])

    return _write(config, store, web_ids, window, RECORDED_SUMMARIES, read,
                  schemas.recorded_summaries(start, end), "interval_start", run_id)


def extract_interpolated(config: PIWebAPIConfig, store: DeltaStore, web_ids: Sequence[str], window: DayWindow, *,
                         step: timedelta, run_id: str | None = None) -> Extracted:
    """Replace `interpolated_values` for the window's days by PI's interpolated values of `web_ids`."""

    async def read(client: PIWebAPIClient, part: list[str]) -> tuple[pa.Table, pa.Table]:
        batch = await client.interpolated(part, window.start_time, window.end_time, interval=step)
        return batch.values.append_column("event_date", window.days_of(batch.values["timestamp"])), batch.rejects

    schema = schemas.recorded_values(window.start_time, window.end_time)
    schema.name = INTERPOLATED_VALUES.name
    return _write(config, store, web_ids, window, INTERPOLATED_VALUES, read, schema, "timestamp", run_id)


def shape_summaries(main: pa.Table, events: pa.Table, window: DayWindow, duration: timedelta, basis: str) -> pa.Table:
    """PI's long answer (client.SUMMARY_SCHEMA) -> one row per (stream, interval) in RECORDED_SUMMARIES' columns
    (nullable still: validation decides what may be written)."""
    rows = _of_type(main, "Average", "average", ["name", "units"])
    for column, kind in SUMMARY_COLUMNS.items():
        if column != "average":
            rows = rows.join(_of_type(main, kind, column), _KEYS, join_type="left outer")
    rows = rows.join(_of_type(events, "Count", "count"), _KEYS, join_type="left outer")
    rows = rows.sort_by([(k, "ascending") for k in _KEYS])
    starts = rows["interval_start"]
    start_us = pc.cast(starts, pa.int64())
    ends = pc.min_element_wise(pc.add(start_us, duration // timedelta(microseconds=1)), to_us(window.end_time))
    ends = pc.cast(ends, starts.type)
    extra = {
        "interval_end": ends,
        "calculation_basis": pa.array([basis] * rows.num_rows, pa.string()),
        "event_date": window.days_of(starts),
    }
    for name, column in extra.items():
        rows = rows.append_column(name, column)
    return rows.select(RECORDED_SUMMARIES.schema.names)


def _of_type(long: pa.Table, kind: str, column: str, carry: Sequence[str] = ()) -> pa.Table:
    picked = long.filter(pc.equal(long["summary_type"], kind)).select([*_KEYS, *carry, "value"])
    return picked.rename_columns([*_KEYS, *carry, column])


def _write(config: PIWebAPIConfig, store: DeltaStore, web_ids: Sequence[str], window: DayWindow, spec: TableSpec,
           read: Callable[[PIWebAPIClient, list[str]], object], schema: pandera.DataFrameSchema, time_column: str,
           run_id: str | None) -> Extracted:
    """Stream slices of tags through `read` -> validation -> the one-commit write recorded values use."""
    ids = list(dict.fromkeys(web_ids))
    reading = Reading()

    async def slices() -> AsyncIterator[tuple[pa.Table, pa.Table]]:
        if not ids:  # nothing selected: the window is emptied, not an error
            return
        async with PIWebAPIClient(config) as client:
            for i in range(0, len(ids), _TAGS_PER_READ):
                yield await read(client, ids[i:i + _TAGS_PER_READ])  # type: ignore[misc]

    def valid_batches() -> Iterator[pa.RecordBatch]:
        try:
            for table, refused in iterate_in_thread(slices):
                split = split_valid(table, schema, time_column=time_column)
                reading.rejects.extend(r.cast(REJECT_SCHEMA) for r in (refused, split.rejects))
                reading.rows += split.valid.num_rows
                yield from split.valid.cast(spec.schema).to_batches()
        except BaseException as exc:
            reading.errors.append(exc)
            raise

    return commit_values(store, valid_batches(), reading, window, run_id=run_id, table=spec)
