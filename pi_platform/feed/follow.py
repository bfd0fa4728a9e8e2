"""Late-join feed of `stream_values`: replay what was committed since a time, then follow new commits.

The switch from replay to live is a Delta version V, read once at the start: the replay is the snapshot at V,
live is what each version after V changed (`commits.CommitLog.change`). Every committed row is in exactly one
of them, so nothing falls in the gap and nothing is delivered twice, however many writers commit meanwhile.

A consumer that must survive restarts (the MQTT publisher) keeps the `Position` of the last batch it finished
with and hands it back as `start`: rows are delivered in a deterministic order (per version, sorted by time,
stream, position), so "version V, offset k" names the same row again after a restart.

Rows whose timestamp is before `since` are never delivered, also when a late backfill commits them: the feed
is "rows with timestamp >= since, in commit order". A corrected value (the sink merges PI's corrections) is
delivered again with its new content; the consumer keeps the last row per key (web_id, timestamp, position).
"""

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import pyarrow as pa
import pyarrow.dataset as ds

from pi_platform import pitime
from pi_platform.errors import ConfigError
from pi_platform.feed.commits import SCHEMA, CommitLog, FeedError, latest_version, snapshot

log = logging.getLogger(__name__)

ORDER = [("timestamp", "ascending"), ("web_id", "ascending"), ("position", "ascending")]
CHUNK_ROWS = 10_000
POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Position:
    """Where a feed continues: after `offset` rows of the snapshot at `version` (replay) or of what commit
    `version` changed (live). Once a version is delivered in full, the position is (version + 1, 0, live)."""

    version: int
    offset: int
    replay: bool

    def as_json(self) -> dict:
        return {"version": self.version, "offset": self.offset, "replay": self.replay}

    @classmethod
    def from_json(cls, data: dict) -> "Position":
        return cls(int(data["version"]), int(data["offset"]), bool(data["replay"]))


@dataclass(frozen=True)
class FeedBatch:
    """Rows in feed order and the position right after them. `kind` is "replay", "live", or "caught_up":
    the one empty batch between the end of the replay and the first live rows."""

    rows: pa.Table
    position: Position
    kind: str


class Feed:
    """One follower of a `stream_values` table (`table_uri`: its directory or object-store URI)."""

    def __init__(self, table_uri: str, storage_options: dict[str, str] | None = None,
                 since: str | datetime | None = None, tags: Sequence[str] = (), *,
                 start: Position | None = None, columns: Sequence[str] | None = None,
                 poll_interval_s: float = POLL_INTERVAL_S, chunk_rows: int = CHUNK_ROWS) -> None:
        self.table_uri = table_uri
        self.storage_options = dict(storage_options or {})
        try:
            self.since = pitime.parse_time(since if since is not None else "*")
        except pitime.PITimeError as exc:
            raise ConfigError(f"--since: {exc}") from None
        self.tags = tuple(tags)
        self.start = start
        self.columns = list(columns) if columns else SCHEMA.names
        unknown = sorted(set(self.columns) - set(SCHEMA.names))
        if unknown:
            raise FeedError(f"unknown column(s) {', '.join(unknown)}: choose from {', '.join(SCHEMA.names)}")
        self.poll_interval_s = poll_interval_s
        self.chunk_rows = chunk_rows
        self._log: CommitLog | None = None

    # ---------------------------------------------------------------------------------------------- filters
    def filter(self) -> ds.Expression:
        """Time and tag filter on columns a correction never changes (web_id, name, timestamp), so a corrected row
        and the row it replaced are kept or dropped together."""
        expression = ds.field("timestamp") >= pa.scalar(self.since, pa.timestamp("us", tz="UTC"))
        if self.tags:
            tags = pa.array(self.tags, pa.string())
            expression &= ds.field("web_id").isin(tags) | ds.field("name").isin(tags)
        return expression

    # ---------------------------------------------------------------------------------------------- iteration
    def steps(self) -> Iterator[FeedBatch | None]:
        """Batches forever; None when nothing new is committed yet (the caller waits `poll_interval_s`)."""
        start = self.start or Position(latest_version(self.table_uri, self.storage_options), 0, True)
        version = start.version
        if start.replay:
            rows = _ordered(snapshot(self.table_uri, self.storage_options, version, self.filter()))
            yield from self._chunks(rows, start, "replay")
            version, skip = version + 1, 0
            yield FeedBatch(self._project(SCHEMA.empty_table()), Position(version, 0, False), "caught_up")
        else:
            yield FeedBatch(self._project(SCHEMA.empty_table()), start, "caught_up")
            skip = start.offset
        while True:
            commits = self._commit_log()
            if commits is None or not commits.has(version):
                yield None
                continue
            change = commits.change(version, self.filter())
            if change.deleted.num_rows:
                raise FeedError(
                    f"commit {version} ({change.operation}) of {self.table_uri} deleted {change.deleted.num_rows} "
                    "row(s) at or after "
                    f"--since {pitime.format_time(self.since)}; a feed cannot take values back: start it again "
                    "with a --since after the deleted rows")
            rows = _ordered(change.rows)
            yield from self._chunks(rows, Position(version, skip, False), "live")
            version, skip = version + 1, 0

    def _chunks(self, rows: pa.Table, start: Position, kind: str) -> Iterator[FeedBatch]:
        """`rows` after `start.offset` in chunks, each with the position to continue from: the last chunk of a
        version points at the next version. A commit with nothing to deliver (compaction, other tags) still yields
        one empty batch, so a consumer's position moves past it."""
        following = Position(start.version + 1, 0, False)
        if rows.num_rows <= start.offset:
            yield FeedBatch(self._project(rows.slice(0, 0)), following, kind)
        for offset in range(start.offset, rows.num_rows, self.chunk_rows):
            chunk = rows.slice(offset, self.chunk_rows)
            end = offset + chunk.num_rows
            yield FeedBatch(self._project(chunk), following if end == rows.num_rows else replace(start, offset=end),
                            kind)

    def _project(self, rows: pa.Table) -> pa.Table:
        return rows.select(self.columns)

    def _commit_log(self) -> CommitLog | None:
        """Opened once the table exists: the feed may start before the collector's first commit."""
        if self._log is None and latest_version(self.table_uri, self.storage_options) >= 0:
            self._log = CommitLog(self.table_uri, self.storage_options)
        return self._log

    def batches(self, stop: threading.Event | None = None) -> Generator[FeedBatch, None, None]:
        """Blocking iterator of batches until `stop` is set."""
        stop = stop or threading.Event()
        for batch in self.steps():
            if stop.is_set():
                return
            if batch is None:
                stop.wait(self.poll_interval_s)
            else:
                yield batch

    async def abatches(self) -> AsyncIterator[FeedBatch]:
        """The same batches for asyncio code; table reads run in a worker thread, never on the event loop."""
        steps = self.steps()
        while True:
            batch = await asyncio.to_thread(next, steps)
            if batch is None:
                await asyncio.sleep(self.poll_interval_s)
            else:
                yield batch


def _ordered(rows: pa.Table) -> pa.Table:
    return rows.sort_by(ORDER) if rows.num_rows else rows


def follow_sync(table_uri: str, storage_options: dict[str, str] | None = None, since: str | datetime | None = None,
                tags: Sequence[str] = (), stop: threading.Event | None = None, **options: object) -> Iterator[pa.Table]:
    """Rows of `stream_values` with timestamp >= `since` (PI time or datetime; default now), committed before
    the call and then as they commit, each exactly once, until `stop` is set."""
    feed = Feed(table_uri, storage_options, since, tags, **options)  # type: ignore[arg-type]
    for batch in feed.batches(stop):
        if batch.rows.num_rows:
            yield batch.rows


async def follow(table_uri: str, storage_options: dict[str, str] | None = None, since: str | datetime | None = None,
                 tags: Sequence[str] = (), **options: object) -> AsyncIterator[pa.Table]:
    """`follow_sync` for asyncio: stop by breaking out of the loop or cancelling the task."""
    feed = Feed(table_uri, storage_options, since, tags, **options)  # type: ignore[arg-type]
    async for batch in feed.abatches():
        if batch.rows.num_rows:
            yield batch.rows


def release_arrow(batches: Generator[FeedBatch, None, None]) -> None:
    """Close a feed iterator and collect what it held before the interpreter exits: Arrow scanner threads still
    referenced during Python's final teardown abort the process ("terminate called without an active exception",
    apache/arrow#34314), which a command that finished its work must not do."""
    batches.close()
    gc.collect()
