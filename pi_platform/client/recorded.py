"""Multi-tag recorded reads: windows x tag groups, fanned out within the transport's concurrency bound.

Each (window, group) job reads `streamsets/recorded` with repeated webId (groups sized to keep URLs under
max_url_length). Streams whose page came back full continue with their own time cursor; streams that
share a cursor are re-queried together, the rest of the group is done. Pages become ValueBatch chunks
as they arrive and flow through a bounded queue, so memory is bounded by max_concurrency pages whatever
the number of tags or the length of the range.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from urllib.parse import quote

import msgspec
import orjson
import pyarrow as pa

from pi_platform.client.columns import PageTail, StreamPage, ValueBatch, build_batch
from pi_platform.client.config import PIWebAPIConfig
from pi_platform.client.errors import ProtocolError
from pi_platform.client.paging import Cursor, advance, dict_stamp
from pi_platform.client.recorded_json import RecordedPage, decode_recorded
from pi_platform.client.throttle import backoff_delay
from pi_platform.client.transport import Transport, error_text, web_exception_error
from pi_platform.pitime import format_time, to_us
from pi_platform.value_columns import REJECT_SCHEMA

_DONE = object()
_TYPED_STAMP = attrgetter("Timestamp")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    last: bool

    @property
    def end_exclusive_us(self) -> int | None:
        """Every window but the last leaves its end instant to the next one (PI includes both bounds)."""
        return None if self.last else to_us(self.end)


@dataclass
class _Stream:
    requested: str
    cursor: Cursor
    web_id: str = ""
    name: str = ""
    units: str | None = None
    tail: PageTail = field(default_factory=lambda: PageTail(None, 0))
    failures: int = 0  # consecutive WebExceptions for this stream


def windows(start: datetime, end: datetime, size_s: float) -> list[Window]:
    step = timedelta(seconds=size_s)
    out: list[Window] = []
    cursor = start
    while True:
        stop = min(cursor + step, end)
        out.append(Window(cursor, stop, stop >= end))
        if stop >= end:
            return out
        cursor = stop


def url_groups(web_ids: Sequence[str], base_length: int, max_length: int, param: str = "webId") -> list[list[str]]:
    """Split WebIDs (or other repeated `param` values) so `base?...&webId=A&webId=B` stays under max_length
    (IIS/HTTP.sys and proxies cap URLs)."""
    groups: list[list[str]] = []
    current: list[str] = []
    length = base_length
    for web_id in web_ids:
        extra = len(param) + 2 + len(quote(web_id, safe=""))
        if current and length + extra > max_length:
            groups.append(current)
            current, length = [], base_length
        current.append(web_id)
        length += extra
    if current:
        groups.append(current)
    return groups


class RecordedReader:
    """Reads recorded values for many tags; one instance per `recorded(...)` call."""

    def __init__(self, transport: Transport, config: PIWebAPIConfig) -> None:
        self.transport = transport
        self.config = config
        # Fixed part of a streamsets URL: base + path + startTime/endTime/maxCount/boundaryType/selectedFields.
        self._base_length = len(config.url) + 200 + len(quote(RECORDED_FIELDS))

    async def read(self, web_ids: Sequence[str], start: datetime, end: datetime) -> AsyncIterator[ValueBatch]:
        jobs = [(w, g) for w in windows(start, end, self.config.window_s)
                for g in url_groups(list(dict.fromkeys(web_ids)), self._base_length, self.config.max_url_length)]
        if not jobs:
            return
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.config.max_concurrency)
        pending = iter(jobs)

        async def worker() -> None:
            try:
                for window, group in pending:  # shared iterator: each job taken by exactly one worker
                    async for batch in self._read_group(window, group):
                        await queue.put(batch)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
                await queue.put(exc)
                return
            await queue.put(_DONE)

        workers = [asyncio.create_task(worker()) for _ in range(min(self.config.max_concurrency, len(jobs)))]
        running = len(workers)
        try:
            while running:
                item = await queue.get()
                if item is _DONE:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _read_group(self, window: Window, group: list[str]) -> AsyncIterator[ValueBatch]:
        page_size = self.config.page_size
        first = Cursor(format_time(window.start), 0, page_size)
        active = [_Stream(web_id, first) for web_id in group]
        end = format_time(window.end)
        while active:
            by_cursor: dict[tuple[str, int], list[_Stream]] = {}
            for stream in active:
                by_cursor.setdefault((stream.cursor.start, stream.cursor.max_count), []).append(stream)
            active = []
            for (start, max_count), streams in by_cursor.items():
                for chunk in _split(streams, self._base_length, self.config.max_url_length):
                    batch, unfinished = await self._page(chunk, start, end, max_count, window, page_size)
                    active.extend(unfinished)
                    if batch.values.num_rows or batch.rejects.num_rows:
                        yield batch

    async def _page(self, streams: list[_Stream], start: str, end: str, max_count: int, window: Window,
                    page_size: int) -> tuple[ValueBatch, list[_Stream]]:
        params = [("webId", s.requested) for s in streams]
        params += [("startTime", start), ("endTime", end), ("maxCount", max_count), ("boundaryType", "Inside")]
        params.append(("selectedFields", RECORDED_FIELDS))
        data = await self.transport.get("streamsets/recorded", params=params, decode=decode_recorded)
        typed = isinstance(data, RecordedPage)
        answers = _match(streams, data.Items if typed else data)
        taken: list[_Stream] = []  # parallel to `pages`
        pages: list[StreamPage] = []
        unfinished: list[_Stream] = []
        failed = 0
        stream_rejects: list[tuple[_Stream, dict]] = []
        for stream, answer in zip(streams, answers):
            if typed:  # clean by construction: no WebException, no Errors, every field of its declared type
                items, web_id, name, units = answer.Items, answer.WebId, answer.Name, answer.UnitsAbbreviation
                if units is msgspec.UNSET:
                    units = stream.units
            else:
                if answer.get("WebException"):
                    # The server failed mid-stream: these items are partial. Re-read from the same cursor.
                    self._check_web_exception(stream, answer["WebException"])
                    failed = max(failed, stream.failures)
                    unfinished.append(stream)
                    continue
                items = answer.get("Items")
                if not isinstance(items, list) and answer.get("Errors"):
                    # One unreadable stream (deleted point, no permission) must not sink a 100k-tag read:
                    # it becomes a reject with PI's reason, and the stream is done.
                    stream_rejects.append((stream, answer))
                    continue
                if not isinstance(items, list):
                    raise ProtocolError(f"streamsets/recorded answer for {stream.requested} has no Items array")
                web_id, name, units = answer.get("WebId"), answer.get("Name"), answer.get("UnitsAbbreviation", stream.units)
            stream.failures = 0
            stream.web_id = web_id or stream.web_id or stream.requested
            stream.name = name or stream.name or stream.web_id
            stream.units = units
            fresh, stream.cursor = advance(stream.cursor, items, page_size, self.config.server_max_items,
                                           _TYPED_STAMP if typed else dict_stamp)
            pages.append(StreamPage(stream.web_id, stream.name, stream.units, fresh, stream.tail.ts, stream.tail.n))
            taken.append(stream)
            if stream.cursor is not None:
                unfinished.append(stream)
        batch, tails = build_batch(pages, end_exclusive_us=window.end_exclusive_us)
        for stream, tail in zip(taken, tails):
            stream.tail = tail
        if stream_rejects:
            batch = ValueBatch(batch.values, pa.concat_tables([batch.rejects, _stream_rejects(stream_rejects)]))
        if failed:
            await asyncio.sleep(backoff_delay(failed - 1, self.config.backoff_base_s, self.config.backoff_max_s))
        return batch, unfinished

    def _check_web_exception(self, stream: _Stream, web_exception: object) -> None:
        error = web_exception_error(f"PI Web API {self.config.url}/streamsets/recorded", stream.requested,
                                    web_exception)
        stream.failures += 1
        if not error.retryable or stream.failures > self.config.max_retries:
            raise error
        self.transport.stats.retries[f"WebException {error.status}"] += 1


# What build_batch stores, and nothing else: no Links or Path, no per-value UnitsAbbreviation (the stream's is
# the same for a PI point), but WebException and Errors so failures are still seen (~15% fewer bytes).
RECORDED_FIELDS = ";".join(
    [f"Items.{f}" for f in ("WebId", "Name", "UnitsAbbreviation", "WebException", "Errors")]
    + [f"Items.Items.{f}" for f in ("Timestamp", "Value", "Good", "Questionable", "Substituted", "Annotated", "Errors")]
)


def _split(streams: list[_Stream], base_length: int, max_length: int) -> list[list[_Stream]]:
    by_id = {s.requested: s for s in streams}
    return [[by_id[w] for w in group] for group in url_groups([s.requested for s in streams], base_length, max_length)]


def _match(streams: list[_Stream], data: object) -> list:
    """Pair each requested stream with its answer: by WebId when the server echoes ours, else by order.

    `data` is orjson's body, or the typed page's list of StreamValues."""
    if isinstance(data, list):
        items, by_web_id = data, {item.WebId: item for item in data}
    else:
        items = data.get("Items") if isinstance(data, dict) else None
        by_web_id = {item.get("WebId"): item for item in items if isinstance(item, dict)} if isinstance(items, list) else {}
    if not isinstance(items, list) or len(items) != len(streams):
        got = len(items) if isinstance(items, list) else "no"
        raise ProtocolError(f"streamsets/recorded returned {got} streams for {len(streams)} requested WebIDs")
    if all((s.web_id or s.requested) in by_web_id for s in streams):
        return [by_web_id[s.web_id or s.requested] for s in streams]
    return items


def _stream_rejects(failed: list[tuple[_Stream, dict]]) -> pa.Table:
    return pa.Table.from_pydict({
        "web_id": [answer.get("WebId") or stream.requested for stream, answer in failed],
        "name": [answer.get("Name") for _, answer in failed],
        "reason": [f"PI could not read this stream: {error_text(answer)}" for _, answer in failed],
        "raw": [orjson.dumps(answer).decode() for _, answer in failed],
        "timestamp": pa.nulls(len(failed), REJECT_SCHEMA.field("timestamp").type),
    }, schema=REJECT_SCHEMA)

