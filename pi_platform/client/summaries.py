"""PI's own summaries and interpolated values for many tags: `streamsets/summary`, `streamsets/interpolated`.

Summaries are what PI clients (PI Vision, DataLink) show, so they are read from PI, never recomputed here.
Requests are cut like recorded reads: WebIDs in URL-length-bounded groups (`recorded.url_groups`) and the
range in chunks of whole intervals small enough for one answer per stream; the transport retries and bounds
concurrency. Answers become Arrow columns with one list comprehension per field (the `columns` helpers).

Two choices make chunked answers identical to one big answer:
- `timeType=EarliestTime`: every summary is stamped with its interval's start, the key the rows join on
  (Auto stamps Minimum/Maximum with the extreme's own time, which names no interval).
- `EventWeighted` is sent as `EventWeightedExcludeMostRecentEvent`: for several intervals PI's EventWeighted
  already counts an edge event in the later interval only, but a chunk holding a single interval would count
  both edges; the explicit form keeps every interval [start, end).
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.client.columns import StreamPage, ValueBatch, build_batch, parse_timestamps, pluck, pluck_bools
from pi_platform.client.errors import ProtocolError
from pi_platform.client.recorded import url_groups, windows
from pi_platform.client.throttle import backoff_delay
from pi_platform.client.transport import Transport, error_text, web_exception_error
from pi_platform.pitime import format_time, to_us
from pi_platform.value_columns import REJECT_SCHEMA, TIMESTAMP

log = logging.getLogger("pi_platform.client")

# The long form of summaries: one row per (stream, summary type, interval).
SUMMARY_SCHEMA = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("summary_type", pa.string(), nullable=False),
    pa.field("interval_start", TIMESTAMP, nullable=False),
    pa.field("value", pa.float64()),  # null: PI answered its error value (no good data, non-numeric tag)
    pa.field("good", pa.bool_(), nullable=False),
    pa.field("units", pa.string()),
])
# PI's calculationBasis values (PI Web API "Calculation Basis" topic), as a setting or run config may name them.
CALCULATION_BASES = ("TimeWeighted", "EventWeighted", "TimeWeightedContinuous", "TimeWeightedDiscrete",
                     "EventWeightedExcludeMostRecentEvent", "EventWeightedExcludeEarliestEvent",
                     "EventWeightedIncludeBothEnds")
_SENT_BASIS = {"eventweighted": "EventWeightedExcludeMostRecentEvent"}


@dataclass(frozen=True)
class SummaryBatch:
    values: pa.Table  # SUMMARY_SCHEMA
    rejects: pa.Table  # REJECT_SCHEMA: streams PI could not summarise, unreadable items


async def summaries(transport: Transport, web_ids: Sequence[str], start: datetime, end: datetime, *,
                    duration: timedelta, types: Sequence[str], basis: str) -> SummaryBatch:
    """`types` over every `duration` interval of [start, end) for each stream, with `basis` (a calculationBasis)."""
    ids = list(dict.fromkeys(web_ids))
    per_request = max(1, transport.config.page_size // max(len(types), 1))
    chunks = windows(start, end, per_request * duration.total_seconds())
    groups = url_groups(ids, len(transport.config.url) + 300, transport.config.max_url_length)
    sent_basis = _SENT_BASIS.get(basis.lower(), basis)
    jobs = [_summary_job(transport, group, chunk.start, chunk.end, duration, types, sent_basis)
            for chunk in chunks for group in groups]
    done = await asyncio.gather(*jobs)
    return SummaryBatch(
        pa.concat_tables([d.values for d in done]).combine_chunks() if done else SUMMARY_SCHEMA.empty_table(),
        pa.concat_tables([d.rejects for d in done]).combine_chunks() if done else REJECT_SCHEMA.empty_table(),
    )


async def interpolated(transport: Transport, web_ids: Sequence[str], start: datetime, end: datetime, *,
                       interval: timedelta) -> ValueBatch:
    """Values at start, start + interval, ... before end (PI interpolates, or holds a stepped value), VALUE_SCHEMA."""
    ids = list(dict.fromkeys(web_ids))
    per_request = max(1, transport.config.page_size)
    chunks = windows(start, end, per_request * interval.total_seconds())
    groups = url_groups(ids, len(transport.config.url) + 200, transport.config.max_url_length)

    async def job(group: list[str], lo: datetime, hi: datetime) -> ValueBatch:
        params = [("webId", w) for w in group]
        params += [("startTime", format_time(lo)), ("endTime", format_time(hi)), ("interval", _span(interval))]
        answers = await _answers(transport, "streamsets/interpolated", params, group)
        pages = [StreamPage(a.get("WebId") or w, a.get("Name") or w, a.get("UnitsAbbreviation"), a.get("Items") or [])
                 for w, a in answers if not a.get("Errors")]
        batch, _ = build_batch(pages, end_exclusive_us=to_us(hi))  # `end` belongs to the next chunk (or nobody)
        failed = [(w, a) for w, a in answers if a.get("Errors")]
        return ValueBatch(batch.values, _stream_rejects(failed)) if failed else batch

    return ValueBatch.concat(list(await asyncio.gather(*(job(g, c.start, c.end) for c in chunks for g in groups))))


async def _summary_job(transport: Transport, group: list[str], lo: datetime, hi: datetime, duration: timedelta,
                       types: Sequence[str], basis: str) -> SummaryBatch:
    params = [("webId", w) for w in group] + [("summaryType", t) for t in types]
    params += [("startTime", format_time(lo)), ("endTime", format_time(hi)), ("summaryDuration", _span(duration)),
               ("calculationBasis", basis), ("timeType", "EarliestTime")]
    answers = await _answers(transport, "streamsets/summary", params, group)
    good = [(w, a) for w, a in answers if isinstance(a.get("Items"), list)]
    failed = [(w, a) for w, a in answers if not isinstance(a.get("Items"), list)]
    lengths = [len(a["Items"]) for _, a in good]
    items = [item for _, a in good for item in a["Items"]]
    values = pluck(items, "Value", {})
    values = [v if type(v) is dict else {} for v in values]
    stamps, bad_ts = parse_timestamps(pluck(values, "Timestamp"))
    raw = pluck(values, "Value")
    number = pa.array([v if type(v) in (int, float) else None for v in raw], pa.float64())
    state = pa.array([type(v) is dict for v in raw], pa.bool_())  # PI's error value: a system state
    unreadable = pc.invert(pc.or_(pc.is_valid(number), state))
    if bad_ts is not None:
        unreadable = pc.or_(unreadable, pa.array(bad_ts))
    table = pa.table({
        "web_id": pa.array([a.get("WebId") or w for w, a in good], pa.string()).take(_repeat(lengths)),
        "name": pa.array([a.get("Name") for _, a in good], pa.string()).take(_repeat(lengths)),
        "summary_type": pa.array(pluck(items, "Type", ""), pa.string()),
        "interval_start": stamps,
        "value": number,
        "good": pc.and_(pluck_bools(values, "Good", True), pc.is_valid(number)),
        "units": pa.array(pluck(values, "UnitsAbbreviation"), pa.string()),
    })
    # The last chunk's end is the range's end, where PI could stamp no interval; anything at or after it is not ours.
    inside = pc.and_(pc.invert(unreadable), pc.less(table["interval_start"], pa.scalar(hi, TIMESTAMP)))
    rejects = [_stream_rejects(failed)]
    if not pc.all(pc.fill_null(inside, False)).as_py():
        dropped = pc.invert(pc.fill_null(inside, False))
        rejects.append(_item_rejects(table.filter(dropped), [items[i] for i in pc.indices_nonzero(dropped).to_pylist()]))
        table = table.filter(inside)
    return SummaryBatch(table.cast(SUMMARY_SCHEMA), pa.concat_tables(rejects))


async def _answers(transport: Transport, path: str, params: list, group: list[str]) -> list[tuple[str, dict]]:
    """(requested WebID, its answer) in request order; a stream's retryable WebException re-reads the group."""
    attempt = 0
    while True:
        data = await transport.get(path, params=params)
        items = data.get("Items") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(group):
            got = len(items) if isinstance(items, list) else "no"
            raise ProtocolError(f"{path} returned {got} streams for {len(group)} requested WebIDs")
        broken = next(((w, a) for w, a in zip(group, items) if isinstance(a, dict) and a.get("WebException")), None)
        if broken is None:
            return [(w, a if isinstance(a, dict) else {"Errors": ["not an object"]}) for w, a in zip(group, items)]
        error = web_exception_error(f"PI Web API {transport.config.url}/{path}", broken[0], broken[1]["WebException"])
        if not error.retryable or attempt >= transport.config.max_retries:
            raise error
        delay = backoff_delay(attempt, transport.config.backoff_base_s, transport.config.backoff_max_s)
        log.warning("%s: retrying in %.1fs (attempt %d of %d)", error, delay, attempt + 1, transport.config.max_retries)
        transport.stats.retries[f"WebException {error.status}"] += 1
        attempt += 1
        await asyncio.sleep(delay)


def _span(step: timedelta) -> str:
    """An AFTimeSpan PI reads exactly: whole seconds where possible."""
    seconds = step.total_seconds()
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"


def _repeat(lengths: list[int]) -> pa.Array:
    """Row -> index of its stream, for `take` (streams answer a run of items each)."""
    return pa.array(np.repeat(np.arange(len(lengths)), lengths))


def _stream_rejects(failed: list[tuple[str, dict]]) -> pa.Table:
    return pa.Table.from_pydict({
        "web_id": [answer.get("WebId") or web_id for web_id, answer in failed],
        "name": [answer.get("Name") for _, answer in failed],
        "reason": [f"PI could not read this stream: {error_text(answer)}" for _, answer in failed],
        "raw": [orjson.dumps(answer).decode() for _, answer in failed],
        "timestamp": pa.nulls(len(failed), TIMESTAMP),
    }, schema=REJECT_SCHEMA)


def _item_rejects(rows: pa.Table, items: list) -> pa.Table:
    return pa.Table.from_pydict({
        "web_id": rows["web_id"],
        "name": rows["name"],
        "reason": pa.array(["summary item without a readable Timestamp or Value"] * rows.num_rows, pa.string()),
        "raw": [orjson.dumps(item).decode() for item in items],
        "timestamp": rows["interval_start"],
    }, schema=REJECT_SCHEMA)
