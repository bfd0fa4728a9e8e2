"""The collector: channels in, exactly-once micro-batches of `stream_values` out.

Data path (each step only after the previous one is durable):

    socket -> WAL append + fsync -> batcher takes WAL records in log order
           -> parse -> reconcile (+ verification reads) -> validate -> Delta commit (txn version = WAL offset)

Side paths: every (re)opened connection starts a gap backfill from each stream's last committed time; the
subscription file is watched and applied by opening new channels before closing old ones; a status file
is rewritten every second. A restart recovers from the WAL (what was received) and from PI (what
happened while nobody listened), so a crash, a network drop or a long outage loses nothing.
"""

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.pitime import parse_time
from pi_platform.storage import DeltaStore
from pi_platform.streaming import reads, state
from pi_platform.streaming.channel import ChannelConnection, ChannelOptions, channel_urls, handshake_headers, ssl_context
from pi_platform.streaming.messages import parse_records
from pi_platform.streaming.metrics import RollingMetrics
from pi_platform.streaming.rhythm import StreamRhythm
from pi_platform.streaming.reconcile import Plan, compose, drop_before_start, late_groups
from pi_platform.streaming.sink import Commit, StreamSink
from pi_platform.streaming.wal import WalRecord, WriteAheadLog

log = logging.getLogger(__name__)

_MARKER = "@marker"  # WAL source of records that only advance the offset (batches of PI reads alone)
_GUARD_SIZE = 200_000


@dataclass(frozen=True)
class CollectorConfig:
    state_dir: Path
    delta_root: str
    storage_options: dict[str, str] = field(default_factory=dict)
    name: str = "collector"
    channel: ChannelOptions = field(default_factory=ChannelOptions)
    batch_max_bytes: int = 16 << 20  # of raw channel JSON per micro-batch
    batch_max_age_s: float = 1.0
    max_buffer_bytes: int = 256 << 20  # WAL tail held in memory before sockets are pushed back
    start: str = "*"  # where a never-committed stream's data starts (PI time)
    # Every (re)connect re-reads this much before each stream's last committed value: corrections PI made
    # while nobody listened are otherwise invisible (PI Web API has no "modified since" query).
    correction_lookback_s: float = 600.0
    fsync: bool = True
    status_interval_s: float = 1.0
    tags_interval_s: float = 5.0  # tags.json is O(streams): rewritten less often than status.json
    subscription_poll_s: float = 1.0

    @property
    def app_id(self) -> str:
        return f"pi-platform-stream:{self.name}"


class Collector:
    def __init__(self, config: CollectorConfig, pi: PIWebAPIConfig, initial_web_ids: list[str] | None = None) -> None:
        self.config = config
        self.pi = pi
        self.state_dir = Path(config.state_dir)
        self.sink = StreamSink(DeltaStore(config.delta_root, config.storage_options), config.app_id)
        self.wal = WriteAheadLog(self.state_dir / state.WAL_DIR, max_buffer_bytes=config.max_buffer_bytes,
                                 fsync=config.fsync)
        self.metrics = RollingMetrics()
        self.rhythm = StreamRhythm()
        self._initial = initial_web_ids or []
        self._lock = state.StateLock(self.state_dir)
        self._connections: dict[str, tuple[ChannelConnection, asyncio.Task[None]]] = {}
        self._retired: dict[str, Any] = {"reconnects": 0, "dead_channels": 0}
        self._next_connection = 0
        self._subscription_lock = asyncio.Lock()
        self._subscription_key: tuple[float, int] | None = None
        self._desired: list[str] = []
        self._hwm: dict[str, int] = {}
        self._since: dict[str, int] = {}
        self._auth: asyncio.Queue[reads.AuthoritativeRows] = asyncio.Queue(maxsize=64)
        self._backfills: set[asyncio.Task[None]] = set()
        self._guard: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._client: PIWebAPIClient | None = None
        self._last_commit: Commit | None = None
        self._commits = 0
        self._started_at = time.time()
        self._backfill_stats = {"started": 0, "finished": 0, "failed": 0, "rows": 0, "last_error": None}
        self._verified_groups = 0
        self._last_error: str | None = None
        self._stopping = False
        self.ready = asyncio.Event()  # set once the WAL is open and messages may be accepted

    # ------------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then flush everything received and exit cleanly."""
        self._lock.acquire()
        try:
            committed = await asyncio.to_thread(self.sink.committed_offset)
            self._hwm = await asyncio.to_thread(self.sink.high_water_marks)
            previous = state.read_json(self.state_dir / state.TAGS_FILE) or {}
            self.rhythm = StreamRhythm(previous.get("tags"), self._hwm)
            replayed = self.wal.open(committed)
            if replayed:
                log.info("replaying %d WAL records received before the last stop", len(replayed))
            self._since = {k: int(v) for k, v in (state.read_json(self.state_dir / state.CURSORS_FILE) or {}).items()}
            async with PIWebAPIClient(self.pi) as client:
                self._client = client
                self.ready.set()
                tasks = [
                    asyncio.create_task(self._batch_loop(stop), name="batcher"),
                    asyncio.create_task(self._status_loop(stop), name="status"),
                    asyncio.create_task(self._subscription_loop(stop), name="subscription"),
                ]
                done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())],
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:  # a crashed loop is a bug: surface it rather than run half a collector
                    if task in tasks and task.exception() is not None:
                        stop.set()
                        raise task.exception()  # type: ignore[misc]
                # Graceful stop: no new subscriptions or sockets, then the batcher drains what was received.
                self._stopping = True
                for task in tasks[1:]:
                    task.cancel()
                await asyncio.gather(*tasks[1:], return_exceptions=True)
                await self._close_connections(list(self._connections))
                for task in self._backfills:
                    task.cancel()
                await asyncio.gather(*self._backfills, return_exceptions=True)
                await tasks[0]
        finally:
            self.wal.close()
            if self.ready.is_set():
                self._write_tags()
            self._write_status(final=True)
            self._lock.release()

    # ------------------------------------------------------------------ subscription
    async def _subscription_loop(self, stop: asyncio.Event) -> None:
        path = self.state_dir / state.SUBSCRIPTION_FILE
        if not path.exists() and self._initial:
            state.write_subscription(self.state_dir, self._initial, start=self.config.start, source="command line")
        if not path.exists():
            log.info("no subscription yet: waiting for %s (written by the Dagster sensor)", path)
        while not stop.is_set():
            try:
                stat = path.stat()
                key = (stat.st_mtime, stat.st_size)
            except FileNotFoundError:
                key = None
            if key is not None and key != self._subscription_key:
                wanted = state.read_subscription(self.state_dir)
                if wanted is not None:
                    self._subscription_key = key
                    await self.apply_subscription(list(wanted["web_ids"]), start=str(wanted.get("start") or "*"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.subscription_poll_s)

    async def apply_subscription(self, web_ids: list[str], *, start: str = "*") -> None:
        """Make the open channels cover exactly `web_ids`, without a gap and without losing buffered values.

        Connections that lose a stream are replaced, new streams get new connections; replacements are
        opened (and their gap backfill started) before the connections they replace are closed. Values
        delivered twice during the overlap are de-duplicated by reconciliation.
        """
        async with self._subscription_lock:
            desired = list(dict.fromkeys(web_ids))
            current = {w for conn, _ in self._connections.values() for w in conn.web_ids}
            wanted = set(desired)
            added = [w for w in desired if w not in current]
            removed = current - wanted
            self._desired = desired
            start_us = int(parse_time(start).timestamp() * 1e6)
            # A stream's data start is fixed when it is first subscribed; committed streams resume from their
            # high-water mark, so re-adding one later backfills the time it was not subscribed.
            new = {w: start_us for w in added if w not in self._since}
            if new:
                self._since.update(new)
                state.write_json(self.state_dir / state.CURSORS_FILE, self._since)
            affected = [name for name, (conn, _) in self._connections.items() if removed & set(conn.web_ids)]
            moving = [w for name in affected for w in self._connections[name][0].web_ids if w not in removed]
            opened = [self._open(ids, url) for ids, url in channel_urls(self.pi.url, moving + added, self.config.channel)]
            if opened:
                waits = [asyncio.create_task(conn.opened.wait()) for conn in opened]
                await asyncio.wait(waits, timeout=2 * self.config.channel.open_timeout_s)
                for task in waits:
                    task.cancel()
            await self._close_connections(affected)
            log.info("subscription: %d streams (%d added, %d removed) on %d connections", len(desired), len(added),
                     len(removed), len(self._connections))

    def _open(self, web_ids: list[str], url: str) -> ChannelConnection:
        self._next_connection += 1
        name = f"c{self._next_connection}"
        conn = ChannelConnection(name, web_ids, url, self.config.channel, handshake_headers(self.pi),
                                 ssl_context(self.pi), self._on_message, self._on_open)
        self._connections[name] = (conn, asyncio.create_task(conn.run(), name=f"channel-{name}"))
        return conn

    async def _close_connections(self, names: list[str]) -> None:
        tasks = []
        for name in names:
            conn, task = self._connections.pop(name)
            self._retired["reconnects"] += conn.stats.reconnects
            self._retired["dead_channels"] += conn.stats.dead_channels
            task.cancel()
            tasks.append(task)
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ inputs
    async def _on_message(self, source: str, payload: bytes) -> None:
        await self.wal.append(time.time_ns(), source, payload)

    async def _on_open(self, conn: ChannelConnection, source: str) -> None:
        """Every (re)open: backfill each stream from its last committed time (or its start) to now."""
        lookback = int(self.config.correction_lookback_s * 1e6)
        starts = {}
        for web_id in conn.web_ids:
            hwm, since = self._hwm.get(web_id), self._since.get(web_id)
            start = since if hwm is None else max(hwm - lookback, since if since is not None else hwm - lookback)
            if start is not None:
                starts[web_id] = start
        if starts and not self._stopping:
            task = asyncio.create_task(self._backfill(starts), name=f"backfill-{source}")
            self._backfills.add(task)
            task.add_done_callback(self._backfills.discard)

    async def _backfill(self, starts: dict[str, int]) -> None:
        assert self._client is not None
        self._backfill_stats["started"] += 1
        try:
            async for rows in reads.backfill(self._client, starts):
                self._backfill_stats["rows"] += rows.rows.num_rows
                await self._auth.put(rows)
            self._backfill_stats["finished"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the next reconnect or restart backfills again
            self._backfill_stats["failed"] += 1
            self._backfill_stats["last_error"] = f"{type(exc).__name__}: {exc}"
            log.warning("gap backfill failed (%s); it is retried on the next reconnect", exc)

    # ------------------------------------------------------------------ batching
    async def _batch_loop(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while True:
            if stop.is_set() and not self.wal.buffered_records and self._auth.empty():
                return
            if not await self._wait_for_input(stop):
                continue
            # Let the batch fill up to its size limit or until its oldest value has waited the maximum age
            # (time spent behind the previous commit counts); a flush on stop does not wait.
            oldest = self.wal.oldest_received_ns
            deadline = (time.time() if oldest is None else oldest / 1e9) + self.config.batch_max_age_s
            while (not stop.is_set() and time.time() < deadline
                   and self.wal.buffered_bytes < self.config.batch_max_bytes):
                await asyncio.sleep(min(0.02, max(0.0, deadline - time.time())))
            records, authoritative = await self._take_batch()
            while True:  # the batch stays in hand until it is committed: PI or storage being down loses nothing
                try:
                    await self._process_batch(records, authoritative)
                    self._last_error = None
                    delay = 0.5
                    break
                except Exception as exc:  # noqa: BLE001 - retried; on stop the WAL keeps the records
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("micro-batch failed (%s); retrying in %.1fs", exc, delay)
                    if stop.is_set():
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)

    async def _wait_for_input(self, stop: asyncio.Event) -> bool:
        if self.wal.buffered_records or not self._auth.empty():
            return True
        if stop.is_set():
            return False
        await self.wal.wait_for_records(0.1)
        return bool(self.wal.buffered_records) or not self._auth.empty()

    async def _take_batch(self) -> tuple[list[WalRecord], list[reads.AuthoritativeRows]]:
        records = self.wal.take(self.config.batch_max_bytes) if self.wal.buffered_records else []
        authoritative: list[reads.AuthoritativeRows] = []
        while not self._auth.empty():
            authoritative.append(self._auth.get_nowait())
        if not records:  # PI reads alone: log a marker so the batch still gets a new, higher version
            await self.wal.append(time.time_ns(), _MARKER, b"")
            records = self.wal.take(1)
        return records, authoritative

    async def _process_batch(self, records: list[WalRecord], authoritative: list[reads.AuthoritativeRows]) -> None:
        parsed = parse_records([r for r in records if r.source != _MARKER])
        channel = drop_before_start(parsed.rows, self._since)
        late = late_groups(channel, self._hwm)
        reads_now = list(authoritative)
        if len(late):
            assert self._client is not None
            reads_now.extend(await reads.verify(self._client, late))
        reads_now.sort(key=lambda a: a.read_started)
        plan = compose(channel, [self._unsuperseded(a) for a in reads_now], late, self._hwm)
        rejects = [parsed.rejects.select(["web_id", "reason", "raw"])] + [
            a.rejects.select(["web_id", "reason", "raw"]) for a in reads_now if a.rejects.num_rows
        ]
        commit = await asyncio.to_thread(self._commit, plan, records[-1].end, rejects)
        self._verified_groups += len(late)
        self._after_commit(commit, plan, reads_now, late)

    def _unsuperseded(self, auth: reads.AuthoritativeRows) -> pa.Table:
        """Drop groups a later read already committed (an older page must not undo a correction)."""
        rows = auth.rows
        if not self._guard or rows.num_rows == 0:
            return rows
        keys = zip(rows["web_id"].to_pylist(), rows["timestamp"].cast(pa.int64()).to_pylist(), strict=True)
        keep = [self._guard.get(k, 0.0) <= auth.read_started for k in keys]
        return rows.filter(pa.array(keep, pa.bool_()))

    def _commit(self, plan: Plan, version: int, rejects: list[pa.Table]) -> Commit:
        bad = pa.concat_tables(rejects) if rejects else None
        if bad is not None and bad.num_rows:
            self.sink.quarantine(bad)
        return self.sink.commit(plan.rows, version=version, may_exist=plan.may_exist)

    def _after_commit(self, commit: Commit, plan: Plan, authoritative: list[reads.AuthoritativeRows],
                      late: pd.MultiIndex) -> None:
        self._last_commit = commit
        self._commits += 1
        rows = plan.rows
        if rows.num_rows:
            grouped = rows.group_by("web_id").aggregate([("timestamp", "max")])
            for web_id, ts in zip(grouped["web_id"].to_pylist(), grouped["timestamp_max"].cast(pa.int64()).to_pylist(),
                                  strict=True):
                if ts > self._hwm.get(web_id, -1):
                    self._hwm[web_id] = ts
        self._remember_reads(authoritative, late)
        self.rhythm.update(rows)
        stamps = rows["timestamp"].slice(0, plan.fresh_rows).cast(pa.int64()).to_numpy(zero_copy_only=False)
        self.metrics.record(commit.committed_at, commit.rows, commit.committed_at - stamps / 1e6)
        self.wal.truncate_before(commit.wal_offset)

    def _remember_reads(self, authoritative: list[reads.AuthoritativeRows], late: pd.MultiIndex) -> None:
        for auth in authoritative:
            rows = auth.rows
            if not rows.num_rows:
                continue
            corrected = rows.filter(rows["substituted"])
            for key in zip(corrected["web_id"].to_pylist(), corrected["timestamp"].cast(pa.int64()).to_pylist(), strict=True):
                self._guard[key] = max(self._guard.get(key, 0.0), auth.read_started)
                self._guard.move_to_end(key)
        now = max((a.read_started for a in authoritative), default=time.time())
        for key in late:
            self._guard[(key[0], int(key[1]))] = max(self._guard.get((key[0], int(key[1])), 0.0), now)
        while len(self._guard) > _GUARD_SIZE:
            self._guard.popitem(last=False)

    # ------------------------------------------------------------------ status
    async def _status_loop(self, stop: asyncio.Event) -> None:
        tags_written = 0.0
        while not stop.is_set():
            for conn, task in self._connections.values():
                if task.done() and not task.cancelled() and task.exception() is not None:
                    # Not a network problem (those are retried inside): e.g. the WAL's disk failed. Stop the
                    # collector so its supervisor restarts it and recovery runs, rather than go on half-deaf.
                    raise RuntimeError(f"connection {conn.name} failed") from task.exception()
            self._write_status()
            if time.monotonic() - tags_written >= self.config.tags_interval_s:
                self._write_tags()
                tags_written = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.status_interval_s)

    def status(self) -> dict[str, Any]:
        now = time.time()
        connections = [asdict(conn.stats) for conn, _ in self._connections.values()]
        last = self._last_commit
        return {
            "pid": os.getpid(),
            "name": self.config.name,
            "app_id": self.config.app_id,
            "pi_url": self.pi.url,
            "table_uri": self.sink.uri,
            "started_at": self._started_at,
            "heartbeat_at": now,
            "state": "stopping" if self._stopping else "running",
            "subscription": {"streams": len(self._desired), "connections": len(connections)},
            "connections": connections,
            "reconnects": self._retired["reconnects"] + sum(c["reconnects"] for c in connections),
            "dead_channels": self._retired["dead_channels"] + sum(c["dead_channels"] for c in connections),
            "buffer": {"records": self.wal.buffered_records, "bytes": self.wal.buffered_bytes,
                       "pending_reads": self._auth.qsize(), "wal_end": self.wal.end},
            "throughput": self.metrics.snapshot(now),
            "total_rows_committed": self.metrics.total_rows,
            "commits": self._commits,
            "last_commit": None if last is None else asdict(last),
            "backfills": dict(self._backfill_stats, running=len(self._backfills)),
            "verified_groups": self._verified_groups,
            "last_error": self._last_error,
        }

    def _write_tags(self) -> None:
        state.write_json(self.state_dir / state.TAGS_FILE, {"written_at": time.time(), "tags": self.rhythm.snapshot()})

    def _write_status(self, final: bool = False) -> None:
        document = self.status()
        if final:
            document["state"] = "stopped"
        state.write_json(self.state_dir / state.STATUS_FILE, document)
