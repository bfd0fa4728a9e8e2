"""The collector: channels in, exactly-once micro-batches of `stream_values` out.

Data path (each step only after the previous one is durable):

    socket -> WAL append + fsync -> batcher takes WAL records in log order
           -> parse -> reconcile (+ verification reads) -> validate -> Delta commit (txn version = WAL offset)

Late groups (corrections, out-of-order values) queue in `pending.py`; a background task reads them back from PI in
rounds and the next batch commits the answers, so a storm of them, or a failing or hung REST side, delays the
corrections, not the fresh values.

Side paths: every interval the table may miss (restart, channel down, reconnect, damaged WAL records)
is written to the gap ledger (gaps.py) before anything follows it, and read from PI with backoff until a
commit holds it; the subscription file is watched, its tag references resolved to canonical WebIDs
(identity.py) and applied by opening new channels before closing old ones, tags PI refuses being named
and kept out of the channels; a status file is rewritten every second. A restart recovers from the WAL (what was received) and from PI (what
happened while nobody listened), so a crash, a network drop or a long outage loses nothing.
"""

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.client.errors import AuthError, BadRequest, Forbidden, NotFound
from pi_platform.pitime import parse_time
from pi_platform.storage import DeltaStore
from pi_platform.streaming import ahead, reads, shards, state
from pi_platform.streaming.channel import ChannelConnection, ChannelOptions, channel_urls, handshake_headers, ssl_context
from pi_platform.streaming.errors import ChannelAuthError, ChannelError, ChannelRejected
from pi_platform.streaming.gaps import GapLedger
from pi_platform.streaming.identity import BadTag, Identities, probe
from pi_platform.streaming.messages import STREAM_SCHEMA, parse_records
from pi_platform.streaming.metrics import RollingMetrics
from pi_platform.streaming.pending import CorrectionBudget, PendingGroups, windows
from pi_platform.streaming.reconcile import Plan, compose, drop_before_start, late_groups
from pi_platform.streaming.shards import Shard
from pi_platform.streaming.sink import Commit, Prepared, StreamSink
from pi_platform.streaming.snapshots import SnapshotOptions, SnapshotWatch
from pi_platform.streaming.wal import WalRecord, WriteAheadLog
from pi_platform.value_columns import REJECT_SCHEMA

log = logging.getLogger(__name__)

_MARKER = "@marker"  # WAL source of records that only advance the offset (batches of PI reads alone)
_GUARD_SIZE = 200_000
_VERIFY_RETRY_S = (1.0, 15.0)  # first and longest wait before verification reads are tried again after a failure
# Share of its wall time the collector's own compaction works (pausing between merged groups): at full speed its
# ~30 s of reading and writing every ~600 commits at 10,000 values/s held the commits back (`compaction.py`).
_COMPACT_DUTY = 0.25
_LATE_WARN_S = 600.0  # a late group waiting longer than this is a problem the status names (pending.py)


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
    # On stop, micro-batches go on committing what was received for at most this long (None: all of it); the rest
    # stays in the WAL and is committed on the next start, exactly once either way. Draining a full buffer behind
    # a backlog takes minutes, past a supervisor's grace period (Kubernetes' default: 30 s). All by default: a
    # layout change (PI_STREAM_SHARDS) needs the old collectors' WALs committed before the new shards start.
    stop_drain_s: float | None = None
    start: str = "*"  # where a never-committed stream's data starts (PI time)
    # Every (re)connect re-reads this much before each stream's last committed value: corrections PI made
    # while nobody listened are otherwise invisible (PI Web API has no "modified since" query).
    correction_lookback_s: float = 600.0
    # A late group (a PI correction, mostly) waits at least this long before its verification read: corrections to
    # one second of PI time come 5 s to minutes apart, and one read and rewrite of that second's files then answers
    # all that came meanwhile. The table shows a correction up to this much later; fresh values are not held.
    verify_settle_s: float = 30.0
    # A channel's gap is read up to this long after the socket opened: the server starts its subscription only
    # after the handshake the client has already seen (a loaded PI Web API, or a gap-ledger fsync, makes that
    # ms to s), and values stamped in between would be in neither the read nor the channel. The overlap is
    # harmless: the read is authoritative and replaces the channel's copy of the same groups.
    open_overlap_s: float = 5.0
    fsync: bool = True
    status_interval_s: float = 1.0
    snapshots: SnapshotOptions = field(default_factory=SnapshotOptions)  # PI snapshot poll -> tags.json
    subscription_poll_s: float = 1.0
    # Each commit adds a file or more; compacting every this many commits keeps the table's file count bounded
    # between the hourly maintenance runs (0: leave it to them). Runs beside the batcher under the sink's commit
    # lock (`storage/compaction.py`). Sharded, only shard 1 compacts the shared table.
    compact_every_commits: int = 600
    bad_tag_retry_s: float = 300.0  # how often tags PI refused are tried again
    gap_retry_max_s: float = 60.0  # longest wait between reads of a gap PI keeps failing
    # The slice of the subscription this collector owns (shards.py); its files live in `shard.state_dir(state_dir)`.
    shard: Shard = field(default_factory=lambda: Shard(1, 1))

    @property
    def app_id(self) -> str:
        return self.shard.app_id(f"pi-platform-stream:{self.name}")


class Collector:
    def __init__(self, config: CollectorConfig, pi: PIWebAPIConfig, initial_web_ids: list[str] | None = None) -> None:
        self.config = config
        self.pi = pi
        self.shard = config.shard
        self.state_dir = self.shard.state_dir(config.state_dir)
        self.sink = StreamSink(DeltaStore(config.delta_root, config.storage_options), config.app_id)
        self.wal = WriteAheadLog(self.state_dir / state.WAL_DIR, max_buffer_bytes=config.max_buffer_bytes,
                                 fsync=config.fsync)
        self.metrics = RollingMetrics()
        self._initial = initial_web_ids or []
        self._lock = state.StateLock(self.state_dir)
        self._connections: dict[str, tuple[ChannelConnection, asyncio.Task[None]]] = {}
        self._retired: dict[str, Any] = {"reconnects": 0, "dead_channels": 0}
        self._next_connection = 0
        self._subscription_lock = asyncio.Lock()
        self._subscription_key: tuple[float, int] | None = None
        self._desired: list[str] = []  # canonical WebIDs being collected
        self._refs: list[str] = []  # the subscription as written (names, paths, any WebID type)
        self._start = "*"
        self._unresolved: list[str] = []
        self._resolve_at = 0.0
        self._resolve_attempts = 0
        self._resolve_error: str | None = None
        self.identities = Identities(self.state_dir)
        self.ledger = GapLedger(self.state_dir, retry_max_s=config.gap_retry_max_s)
        self._gap_reads: dict[str, asyncio.Task[None]] = {}
        self._bad: dict[str, BadTag] = {}  # by ref (refused when resolved) or canonical WebID (refused later)
        self._isolating: set[asyncio.Task[None]] = set()
        self._rest_error: str | None = None  # the last PI REST failure of a gap read, auth ones reported as ERROR
        self._hwm: dict[str, int] = {}
        self._since: dict[str, int] = {}
        self._auth: asyncio.Queue[reads.AuthoritativeRows] = asyncio.Queue(maxsize=64)
        self._guard: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._client: PIWebAPIClient | None = None
        self._last_commit: Commit | None = None
        self._commits = 0
        self._compaction: asyncio.Task[None] | None = None
        self._halt_compaction = threading.Event()  # set on stop: the compaction ends after the group in hand
        self._started_at = time.time()
        self._backfill_rows = 0
        self._verified_groups = 0
        self._pending = PendingGroups(self.state_dir, fsync=config.fsync)
        self._budget = CorrectionBudget()
        self._last_windows = 0  # read windows the last round verified: the budget grows only while used
        self._round_started = 0.0  # monotonic
        self._last_round_s = 0.0  # the last round's reads and preparation: the budget is cut when it took long
        self._round: pd.MultiIndex | None = None  # late groups being read, or read and not yet committed
        # Groups of the round that channel messages named again while it was in flight: PI may have changed them after
        # the read started, so they are read again once the round's answers are committed.
        self._again: pd.MultiIndex = pd.MultiIndex.from_arrays([[], []], names=["web_id", "ts"])
        self._verification: asyncio.Task[None] | None = None  # the round's reads (off the batch path)
        self._answers: list[reads.AuthoritativeRows] = []  # the round's answers, for the next batch to commit
        self._ahead: ahead.AheadRewrite | None = None  # their rewrite, prepared beside the batches (`ahead.py`)
        self._span: ahead.Span | None = None  # the PI time it rewrites, noting the commits made since
        self._rounds = {"prepared_ahead": 0, "rewritten_in_batch": 0}  # committed rounds, by where their files were
        self._verify_error: tuple[str, str] | None = None  # (severity, message) of the last failed verification read
        self._verify_after = 0.0  # monotonic time before which verification is not tried again after a failure
        self._verify_delay = _VERIFY_RETRY_S[0]
        self._last_error: str | None = None
        self._stopping = False
        self._drain_until = math.inf  # set on stop when `stop_drain_s` bounds the drain
        self.ready = asyncio.Event()  # set once the WAL is open and messages may be accepted

    # ------------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then flush everything received and exit cleanly."""
        self._lock.acquire()
        try:
            shards.check_concurrent_store(self.config.delta_root, dict(self.config.storage_options), self.shard.count)
            inherited = await asyncio.to_thread(shards.check_handover, self.config.state_dir, self.shard,
                                                lambda app_id: self.sink.store.committed_version(self.sink.table, app_id))
            self.ledger.adopt(inherited, self.shard.owns)  # before the restart gaps: theirs are pinned with ours
            committed = await asyncio.to_thread(self.sink.committed_offset)
            self._hwm = await asyncio.to_thread(self.sink.high_water_marks)
            replayed = self.wal.open(committed)
            if replayed:
                log.info("replaying %d WAL records received before the last stop", len(replayed))
            self._since = {k: int(v) for k, v in (state.read_json(self.state_dir / state.CURSORS_FILE) or {}).items()}
            self._open_restart_gaps()
            async with PIWebAPIClient(self.pi) as client:
                self._client = client
                self.ready.set()
                tasks = [
                    asyncio.create_task(self._batch_loop(stop), name="batcher"),
                    asyncio.create_task(self._status_loop(stop), name="status"),
                    asyncio.create_task(self._subscription_loop(stop), name="subscription"),
                    asyncio.create_task(self._gap_loop(stop), name="gaps"),
                    asyncio.create_task(self._bad_tag_loop(stop), name="bad-tags"),
                    asyncio.create_task(SnapshotWatch(self.pi, self.config.snapshots, self._watched, lambda: self._hwm)
                                        .run(stop, self.state_dir), name="snapshots"),
                ]
                done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())],
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:  # a crashed loop is a bug: surface it rather than run half a collector
                    if task in tasks and task.exception() is not None:
                        stop.set()
                        raise task.exception()  # type: ignore[misc]
                # Graceful stop: no new subscriptions or sockets, then the batcher drains what was received.
                self._stopping = True
                if self.config.stop_drain_s is not None:
                    self._drain_until = time.monotonic() + self.config.stop_drain_s
                for task in tasks[1:]:
                    task.cancel()
                await asyncio.gather(*tasks[1:], return_exceptions=True)
                await self._close_connections(list(self._connections))
                for task in [*self._gap_reads.values(), *self._isolating]:
                    task.cancel()
                await asyncio.gather(*self._gap_reads.values(), *self._isolating, return_exceptions=True)
                await tasks[0]
                if self._verification is not None:  # left in flight by a drain cut short (`stop_drain_s`)
                    self._verification.cancel()
                    await asyncio.gather(self._verification, return_exceptions=True)
                self._pending.save()  # groups verified by the last batches need not be read again
                if self._compaction is not None:
                    self._halt_compaction.set()
                    await self._compaction
        finally:
            self.wal.close()
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
            elif self._unresolved and time.time() >= self._resolve_at:
                await self.apply_subscription(self._refs, start=self._start)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.subscription_poll_s)

    async def apply_subscription(self, refs: list[str], *, start: str = "*") -> None:
        """Make the open channels cover exactly `refs`, without a gap and without losing buffered values.

        `refs` name streams any way (name, path, any WebID type); each is resolved once to its canonical
        WebID, and tags PI refuses are left out (named in the status). Connections that lose a stream are
        replaced, new streams get new connections; replacements are opened (and their gaps recorded)
        before the connections they replace are closed. Values delivered twice during the overlap are
        de-duplicated by reconciliation.
        """
        async with self._subscription_lock:
            self._refs, self._start = list(refs), start
            await self._resolve(refs)
            refused = {b.web_id for b in self._bad.values() if b.web_id}
            canonical = [self.identities.canonical(r) for r in refs if r not in self._bad]
            desired = [w for w in dict.fromkeys(canonical) if w is not None and w not in refused and self.shard.owns(w)]
            current = {w for conn, _ in self._connections.values() for w in conn.web_ids}
            wanted = set(desired)
            added = [w for w in desired if w not in current]
            removed = current - wanted
            self._desired = desired
            start_us = int(parse_time(start).timestamp() * 1e6)
            lookback = int(self.config.correction_lookback_s * 1e6)
            # A stream's data start is fixed when it is first subscribed; committed streams resume from their
            # high-water mark, so re-adding one later backfills the time it was not subscribed. A stream the table
            # holds but this state directory never saw (handed over by a re-shard) starts at its newest committed
            # value minus the look-back, so the hand-over reads back everything since the old shard stopped.
            new = {w: min(start_us, self._hwm[w] - lookback) if w in self._hwm else start_us
                   for w in added if w not in self._since}
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

    async def _resolve(self, refs: list[str]) -> None:
        """Canonical WebIDs for refs not resolved before; PI being unreachable is retried with backoff."""
        assert self._client is not None
        try:
            for bad in await self.identities.resolve(self._client, [r for r in refs if r not in self._bad]):
                self._bad[bad.ref] = bad
                if self._mine(bad):
                    log.error("bad tag %s; left out of the channels, retried every %.0fs", bad.label(),
                              self.config.bad_tag_retry_s)
            self._unresolved, self._resolve_error, self._resolve_attempts = [], None, 0
            self._rest_error = None
        except Exception as exc:  # noqa: BLE001 - PI's REST side is down or refuses us: retried, reported
            self._unresolved = [r for r in refs if self.identities.canonical(r) is None and r not in self._bad]
            self._resolve_error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, (AuthError, Forbidden)):
                self._rest_error = str(exc)
            self._resolve_attempts += 1
            delay = min(60.0, 2.0 ** self._resolve_attempts)
            self._resolve_at = time.time() + delay
            if self._unresolved:
                log.warning("cannot resolve %d subscribed tags (%s); retrying in %.0fs", len(self._unresolved),
                            self._resolve_error, delay)

    def _open(self, web_ids: list[str], url: str) -> ChannelConnection:
        self._next_connection += 1
        name = f"c{self._next_connection}"
        conn = ChannelConnection(name, web_ids, url, self.config.channel, handshake_headers(self.pi),
                                 ssl_context(self.pi), self._on_message, self._on_open, self._on_channel_error)
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

    def _gap_start(self, web_id: str, lookback_us: int) -> int | None:
        """Where a stream's gap starts: its last committed value minus the correction look-back (corrections
        PI made while nobody listened), never before its data start; None when it has neither."""
        hwm, since = self._hwm.get(web_id), self._since.get(web_id)
        if hwm is None:
            return since
        return hwm - lookback_us if since is None else max(hwm - lookback_us, since)

    def _gap_starts(self, web_ids: list[str]) -> dict[str, int]:
        lookback = int(self.config.correction_lookback_s * 1e6)
        starts = {w: self._gap_start(w, lookback) for w in web_ids}
        return {w: s for w, s in starts.items() if s is not None}

    def _open_restart_gaps(self) -> None:
        """Before anything else: gaps left open by the previous run end now, the collector's own downtime is
        recorded for every subscribed stream, and damaged WAL records become gaps of their receive times."""
        now_us = int(time.time() * 1e6)
        self.ledger.pin(None, now_us, {})
        subscribed = (state.read_subscription(self.state_dir) or {}).get("web_ids") or []
        # Refs resolved before, or already the key this state directory collects under.
        canonical = (self.identities.canonical(r) or (r if r in self._since else None) for r in subscribed)
        known = [w for w in dict.fromkeys(canonical) if w is not None and self.shard.owns(w)]
        if starts := self._gap_starts(known):
            self.ledger.open("collector restart", starts, now_us)
        for damage in self.wal.damages:
            lookback = int(self.config.correction_lookback_s * 1e6)
            after = None if damage.after_ns is None else damage.after_ns // 1000 - lookback
            starts = {w: s if after is None else max(s, after) for w, s in self._gap_starts(known).items()}
            end = now_us if damage.before_ns is None else damage.before_ns // 1000
            if starts:
                self.ledger.open(f"damaged WAL record at byte {damage.offset}", starts, end)

    async def _on_open(self, conn: ChannelConnection, source: str) -> None:
        """Every (re)open, before its first message: the gap up to now is in the ledger (durably)."""
        if self._stopping:
            return
        end_us = int((time.time() + self.config.open_overlap_s) * 1e6)
        starts = self._gap_starts(conn.web_ids)
        if starts and not self.ledger.pin(conn.name, end_us, starts):
            reason = "reconnect" if conn.stats.attempts > 1 else "channel opened"
            self.ledger.open(reason, starts, end_us)

    async def _on_channel_error(self, conn: ChannelConnection, exc: ChannelError) -> None:
        """A channel went down: a growing gap for its streams (pinned when it reopens); a rejected URL holds a
        bad WebId, which is found and taken out so the others flow again."""
        if self._stopping:
            return
        if not any(g.end_us is None and g.connection == conn.name for g in self.ledger.gaps.values()):
            if starts := self._gap_starts(conn.web_ids):
                self.ledger.open("channel down", starts, None, connection=conn.name)
        if isinstance(exc, ChannelRejected):
            self._isolate(conn.web_ids)

    def _isolate(self, web_ids: list[str]) -> None:
        task = asyncio.create_task(self._find_bad(web_ids), name="isolate")
        self._isolating.add(task)
        task.add_done_callback(self._isolating.discard)

    async def _find_bad(self, web_ids: list[str]) -> None:
        """Ask PI about each WebId (one batch); refused ones leave the subscription until they answer again."""
        assert self._client is not None
        try:
            bad = await probe(self._client, web_ids, {w: self.identities.name_of(w) or "" for w in web_ids})
        except Exception as exc:  # noqa: BLE001 - PI unreachable: the channel fails again and we ask again
            log.warning("cannot probe %d WebIds for a bad one (%s)", len(web_ids), exc)
            return
        fresh = [b for b in bad if b.web_id not in self._bad]
        for tag in fresh:
            self._bad[tag.web_id] = tag  # type: ignore[index]
            log.error("bad tag %s; taken out of its channel, retried every %.0fs", tag.label(),
                      self.config.bad_tag_retry_s)
        if fresh:
            self.ledger.drop_streams({b.web_id for b in fresh if b.web_id})
            await self.apply_subscription(self._refs, start=self._start)

    async def _bad_tag_loop(self, stop: asyncio.Event) -> None:
        """Refused tags are tried again on a slow cadence; one that answers rejoins the subscription."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.bad_tag_retry_s)
            if stop.is_set() or not self._bad:
                continue
            if mine := [b.label() for b in self._bad.values() if self._mine(b)]:
                log.info("retrying %d bad tags: %s", len(mine), ", ".join(mine))
            assert self._client is not None
            by_ref = [b.ref for b in self._bad.values() if b.web_id is None]
            by_id = [b.web_id for b in self._bad.values() if b.web_id is not None]
            try:
                still = {b.web_id for b in await probe(self._client, by_id, {})} if by_id else set()
                # Refs are re-resolved before they leave `_bad`, so a PI outage during the retry never drops a
                # bad tag from the status (it stays named until PI actually resolves it).
                still_refs = {b.ref for b in await self.identities.resolve(self._client, by_ref)} if by_ref else set()
            except Exception as exc:  # noqa: BLE001
                log.warning("bad-tag retry failed (%s); next try in %.0fs", exc, self.config.bad_tag_retry_s)
                continue
            for key in (set(by_id) - still) | (set(by_ref) - still_refs):
                log.info("tag %s answers again; resubscribing", self._bad.pop(key).label())
            await self.apply_subscription(self._refs, start=self._start)  # re-resolves the refused refs

    async def _gap_loop(self, stop: asyncio.Event) -> None:
        """Read every due gap; a failed read is retried with backoff, for as long as PI keeps failing."""
        while not stop.is_set():
            refused = {b.web_id for b in self._bad.values() if b.web_id}
            for gap in self.ledger.due(time.time()):
                if gap.id not in self._gap_reads and self._client is not None:
                    starts = {w: s for w, s in gap.starts.items() if w not in refused}
                    task = asyncio.create_task(self._read_gap(gap.id, gap.reason, starts, gap.end_us or 0),
                                               name=f"gap-{gap.id}")
                    self._gap_reads[gap.id] = task
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)

    async def _read_gap(self, gap_id: str, reason: str, starts: dict[str, int], end_us: int) -> None:
        """Read one gap completely; its last chunk carries the gap's id, so the commit holding it closes it."""
        assert self._client is not None
        try:
            async for rows in reads.backfill(self._client, starts, end_us):
                self._backfill_rows += rows.rows.num_rows
                await self._auth.put(rows)
            self._rest_error = None
            await self._auth.put(reads.AuthoritativeRows(time.time(), STREAM_SCHEMA.empty_table(),
                                                         REJECT_SCHEMA.empty_table(), closes_gap=gap_id))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the ledger keeps the gap; it is read again after a backoff
            self._gap_reads.pop(gap_id, None)
            error = f"{type(exc).__name__}: {exc}"
            self._rest_error = str(exc) if isinstance(exc, (AuthError, Forbidden)) else self._rest_error
            attempts = self.ledger.gaps[gap_id].attempts + 1 if gap_id in self.ledger.gaps else 0
            delay = self.ledger.failed(gap_id, error)
            log.warning("gap %s (%s, %d streams): read failed (attempt %d): %s; retrying in %.1fs", gap_id, reason,
                        len(starts), attempts, error, delay)
            if isinstance(exc, (NotFound, BadRequest)):  # one refused stream fails the whole request
                self._isolate(list(starts))

    # ------------------------------------------------------------------ batching
    async def _batch_loop(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while True:
            if (stop.is_set() and not self.wal.buffered_records and self._auth.empty() and not self._answers
                    and self._round is None):
                if not len(self._pending):
                    return
                if self._verify_error is not None:  # the queue is saved: a REST outage must not hold the stop
                    log.warning("stopping with %d late groups not yet verified (PI's verification reads fail): the "
                                "next start verifies them", len(self._pending))
                    return
            if self._stopping and time.monotonic() >= self._drain_until:
                log.warning("stopping with %d received messages not yet committed: they stay in the write-ahead log "
                            "and are committed on the next start (%d pending PI reads: the restart's gap read repeats "
                            "them; %d late groups not yet verified: the next start verifies them)",
                            self.wal.buffered_records, self._auth.qsize(), len(self._pending))
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
            records, authoritative, answers = await self._take_batch()
            while True:  # the batch stays in hand until it is committed: PI or storage being down loses nothing
                try:
                    await self._process_batch(records, authoritative, answers)
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
        self._start_verification()
        if self.wal.buffered_records or not self._auth.empty() or self._answers:
            return True
        if stop.is_set() and self._round is None:
            return False
        await self.wal.wait_for_records(0.1)  # a round's answers are looked for at least this often
        return bool(self.wal.buffered_records) or not self._auth.empty() or bool(self._answers)

    # ------------------------------------------------------------------ verification of late groups
    def _start_verification(self) -> None:
        """Start a round of verification reads for the oldest waiting late groups, as many as the budget allows, in
        the background: a slow or hung PI REST side then holds the corrections back, never the fresh values. One
        round at a time, none while a failure is backed off."""
        if (self._round is not None or not len(self._pending) or self._client is None
                or time.monotonic() < self._verify_after):
            return
        bad = {b.web_id for b in self._bad.values() if b.web_id}
        if bad and (dropped := self._pending.drop_streams(bad)):
            log.warning("dropped %d late groups of tags PI refuses (bad tags): there is nothing to verify them "
                        "against; a tag that comes back is re-read from before its last value", dropped)
        oldest = self.wal.oldest_received_ns
        budget = self._budget.next(0.0 if oldest is None else time.time() - oldest / 1e9,
                                   self.config.batch_max_age_s, self._last_windows, self._last_round_s)
        settled = math.inf if self._stopping else time.time() - self.config.verify_settle_s
        groups = self._pending.take(budget, seen_before=settled)
        if len(groups):
            self._round, self._round_started = groups, time.monotonic()
            self._verification = asyncio.create_task(self._verify(groups), name="verification")

    async def _verify(self, groups: pd.MultiIndex) -> None:
        """Read one round and hand PI's answers to the next batch. A window PI fails (after the client's own logged
        retries) leaves its groups waiting and backs the next round off; one refusing a tag also has the tag
        probed, so a deleted tag is named and its groups dropped instead of failing every round."""
        assert self._client is not None
        try:
            outcome = await reads.verify(self._client, groups)
        except Exception as exc:  # noqa: BLE001 - not a PI failure (those are in the outcome): logged whole, retried
            log.exception("verification round of %d late groups failed", len(groups))
            outcome = reads.Verification([], [(list(groups.get_level_values(0).unique()), exc)])
        if outcome.failures:
            _, first = outcome.failures[0]
            self._verify_error = ("ERROR" if isinstance(first, (AuthError, Forbidden)) else "WARN", str(first))
            log.warning("%d of %d verification reads failed (%s); %d late groups wait, tried again in %.0f s",
                        len(outcome.failures), len(outcome.failures) + len(outcome.answers), first,
                        len(self._pending), self._verify_delay)
            self._verify_after = time.monotonic() + self._verify_delay
            self._verify_delay = min(self._verify_delay * 2, _VERIFY_RETRY_S[1])
            refused = list(dict.fromkeys(  # a tag in several failed windows is probed (and named) once
                w for web_ids, exc in outcome.failures if isinstance(exc, (NotFound, BadRequest)) for w in web_ids))
            if refused and not self._stopping:  # probes started now would outlive the stop's cancellation of them
                self._isolate(refused)
        else:
            self._verify_error, self._verify_delay = None, _VERIFY_RETRY_S[0]
        if outcome.answers:
            self._ahead = await self._prepare_ahead(outcome.answers)
            self._last_round_s = time.monotonic() - self._round_started
            self._answers = outcome.answers  # the round ends with the commit holding them
        else:
            self._round, self._again = None, self._again[:0]  # its groups all still wait

    async def _prepare_ahead(self, answers: list[reads.AuthoritativeRows]) -> ahead.AheadRewrite | None:
        """The round's rewrite, prepared in a worker thread while batches go on committing (noted by `_span`);
        None if that fails, and the carrying batch rewrites the files itself."""
        rows = [self._unsuperseded(a) for a in sorted(answers, key=lambda a: a.read_started)]
        verified = reads.verified_by(answers)
        self._span = ahead.span_of(rows)
        try:
            return await asyncio.to_thread(ahead.prepare, self.sink, rows, verified, dict(self._hwm), self._span)
        except Exception as exc:  # noqa: BLE001 - an optimisation: the batch path rewrites (and reports) the same
            log.warning("preparing the rewrite of %d verified groups beside the batches failed (%s); the batch that "
                        "commits them rewrites the files", len(verified), exc)
            return None

    async def _take_batch(self) -> tuple[list[WalRecord], list[reads.AuthoritativeRows], list[reads.AuthoritativeRows]]:
        records = self.wal.take(self.config.batch_max_bytes) if self.wal.buffered_records else []
        authoritative: list[reads.AuthoritativeRows] = []
        while not self._auth.empty():
            authoritative.append(self._auth.get_nowait())
        answers, self._answers = self._answers, []
        if not records:  # PI reads alone: log a marker so the batch still gets a new, higher version
            await self.wal.append(time.time_ns(), _MARKER, b"")
            records = self.wal.take(1)
        return records, authoritative, answers

    async def _process_batch(self, records: list[WalRecord], authoritative: list[reads.AuthoritativeRows],
                             answers: list[reads.AuthoritativeRows]) -> None:
        """Commit one micro-batch: its fresh channel values, the gap reads that completed and a verification round's
        `answers`. Its own late groups join the queue (`pending.py`) and their channel rows are left out: the
        group's read replaces them."""
        parsed = parse_records([r for r in records if r.source != _MARKER])
        channel = drop_before_start(parsed.rows, self._since)
        late = late_groups(channel, self._hwm)
        self._pending.add(late, time.time())  # one still waiting keeps its place...
        if self._round is not None and len(late):  # ...and one being read now is read again after
            self._again = self._again.union(late.intersection(self._round))
        verified = reads.verified_by(answers)
        reads_now = sorted([*authoritative, *answers], key=lambda a: a.read_started)
        early, self._ahead = (self._ahead, None) if answers else (None, self._ahead)
        if early is not None:  # the answers' rewrite is prepared: the batch composes the rest around it
            plan = compose(channel, [self._unsuperseded(a) for a in reads_now if a.verifies is None],
                           late.union(verified).union(early.keys), self._hwm)
            early.span.note(plan.rows)
            if early.span.touched:
                log.info("a verification round's prepared rewrite no longer applies (rows were written in its time "
                         "since); its batch rewrites the files")
                early = None
        if early is None:
            plan = compose(channel, [self._unsuperseded(a) for a in reads_now], late.union(verified), self._hwm)
        rejects = [parsed.rejects] + [a.rejects for a in reads_now if a.rejects.num_rows]
        await asyncio.to_thread(self._pending.save)  # before the commit lets the WAL forget the late groups
        commit = await asyncio.to_thread(self._commit, plan, records[-1].end, rejects,
                                         None if early is None else early.prepared)
        if answers:
            self._pending.discard(verified)
            self._pending.add(self._again, time.time())
            self._again = self._again[:0]
            self._verified_groups += len(verified)
            self._last_windows = windows(verified)
            self._round, self._span = None, None
            self._rounds["rewritten_in_batch" if early is None else "prepared_ahead"] += 1
        self._after_commit(commit, plan if early is None else plan.plus(early.plan), reads_now, verified)

    def _unsuperseded(self, auth: reads.AuthoritativeRows) -> pa.Table:
        """Drop groups a later read already committed (an older page must not undo a correction)."""
        rows = auth.rows
        if not self._guard or rows.num_rows == 0:
            return rows
        keys = zip(rows["web_id"].to_pylist(), rows["timestamp"].cast(pa.int64()).to_pylist(), strict=True)
        keep = [self._guard.get(k, 0.0) <= auth.read_started for k in keys]
        return rows.filter(pa.array(keep, pa.bool_()))

    def _commit(self, plan: Plan, version: int, rejects: list[pa.Table], early: Prepared | None) -> Commit:
        bad = pa.concat_tables(rejects) if rejects else None
        if bad is not None and bad.num_rows:
            self.sink.quarantine(bad)
        return self.sink.commit(plan.rows, version=version, may_exist=plan.may_exist, ahead=early)

    def _after_commit(self, commit: Commit, plan: Plan, authoritative: list[reads.AuthoritativeRows],
                      late: pd.MultiIndex) -> None:
        self._last_commit = commit
        self._commits += 1
        if self._span is not None:
            self._span.note(plan.rows)
        every = self.config.compact_every_commits if self.shard.compacts else 0
        if every and self._commits % every == 0 and (self._compaction is None or self._compaction.done()):
            self._compaction = asyncio.create_task(self._compact(), name="compaction")
        rows = plan.rows
        if rows.num_rows:
            grouped = rows.group_by("web_id").aggregate([("timestamp", "max")])
            for web_id, ts in zip(grouped["web_id"].to_pylist(), grouped["timestamp_max"].cast(pa.int64()).to_pylist(),
                                  strict=True):
                if ts > self._hwm.get(web_id, -1):
                    self._hwm[web_id] = ts
        self._remember_reads(authoritative, late)
        for auth in authoritative:  # the complete read of a gap is committed now: only now is the gap closed
            if auth.closes_gap is not None:
                self.ledger.close(auth.closes_gap)
                self._gap_reads.pop(auth.closes_gap, None)
        stamps = rows["timestamp"].slice(0, plan.fresh_rows).cast(pa.int64()).to_numpy(zero_copy_only=False)
        self.metrics.record(commit.committed_at, commit.rows, commit.committed_at - stamps / 1e6)
        self.wal.truncate_before(commit.wal_offset)

    async def _compact(self) -> None:
        try:
            outcome = await asyncio.to_thread(self.sink.store.compact, self.sink.table, lock=self.sink.commit_lock,
                                              duty=_COMPACT_DUTY, halt=self._halt_compaction)
            log.info("compacted stream_values: %d small files into %d", outcome["files_removed"], outcome["files_added"])
        except Exception as exc:  # noqa: BLE001 - compaction is an optimisation; the maintenance job runs anyway
            log.warning("compaction of stream_values failed (%s); the hourly maintenance job will compact it", exc)

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
        while not stop.is_set():
            for conn, task in self._connections.values():
                if task.done() and not task.cancelled() and task.exception() is not None:
                    # Not a network problem (those are retried inside): e.g. the WAL's disk failed. Stop the
                    # collector so its supervisor restarts it and recovery runs, rather than go on half-deaf.
                    raise RuntimeError(f"connection {conn.name} failed") from task.exception()
            self._write_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.status_interval_s)

    def status(self) -> dict[str, Any]:
        now = time.time()
        connections = [asdict(conn.stats) for conn, _ in self._connections.values()]
        last = self._last_commit
        return {
            "pid": os.getpid(),
            "name": self.config.name,
            "shard": self.shard.label,
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
            "gaps": self.ledger.summaries(now),
            "backfills": {"closed": self.ledger.closed, "running": len(self._gap_reads), "rows": self._backfill_rows},
            "bad_tags": [asdict(b) for b in self._bad.values() if self._mine(b)],
            "problems": self.problems(now),
            "verified_groups": self._verified_groups,
            "late_groups": {"waiting": len(self._pending), "oldest_age_s": self._pending.age_s(now),
                            "budget_per_round": self._budget.now, "settle_s": self.config.verify_settle_s,
                            "rounds": dict(self._rounds)},
            "last_error": self._last_error,
        }

    def problems(self, now: float) -> list[dict[str, Any]]:
        """What an operator must know, worst first: one line each, with the fix where there is one."""
        found: list[tuple[str, str, str]] = []
        for conn, _ in self._connections.values():
            stats = conn.stats
            if stats.state != "open" and stats.last_error:
                if stats.last_error_type == ChannelAuthError.__name__:
                    found.append(("ERROR", "auth", stats.last_error))
                elif stats.last_error_type != ChannelRejected.__name__:
                    found.append(("WARN", "channel", f"{conn.name}: {stats.last_error}"))
        if self._rest_error:
            found.append(("ERROR", "auth", self._rest_error))
        for tag in self._bad.values():
            if self._mine(tag):
                found.append(("ERROR", "bad_tag", f"bad tag {tag.label()}"))
        if self.wal.write_error:
            found.append(("ERROR", "wal", f"write-ahead log cannot write: {self.wal.write_error}; waiting for room"))
        for damage in self.wal.damages:
            found.append(("WARN", "wal", f"skipped {damage.records} damaged WAL record(s) at byte {damage.offset}; "
                                          "their time range is re-read from PI"))
        if self._last_error:
            found.append(("ERROR", "commit", f"committing to the lake fails: {self._last_error}; retrying"))
        if self._verify_error and len(self._pending):
            severity, message = self._verify_error
            found.append((severity, "verification", f"{len(self._pending)} late groups (corrections, out-of-order "
                                                    f"values) wait: PI's verification reads fail: {message}"))
        elif (age := self._pending.age_s(now)) is not None and age > _LATE_WARN_S:
            found.append(("WARN", "verification", f"{len(self._pending)} late groups wait, the oldest for {age:.0f} s: "
                                                  "corrections arrive faster than this collector rewrites them; "
                                                  "shard the subscription (PI_STREAM_SHARDS) to add cores"))
        if self._resolve_error and self._unresolved:
            found.append(("WARN", "resolve", f"{len(self._unresolved)} tags not resolved yet: {self._resolve_error}"))
        order = {"ERROR": 0, "WARN": 1}
        unique = list(dict.fromkeys(found))
        return [{"severity": sev, "kind": kind, "message": msg}
                for sev, kind, msg in sorted(unique, key=lambda p: order[p[0]])]

    def _watched(self) -> list[str]:
        """Tags whose PI snapshot is watched: those collected, and those PI refused (a deleted tag is stale)."""
        return [*self._desired, *(b.web_id for b in self._bad.values() if b.web_id and self._mine(b))]

    def _mine(self, tag: BadTag) -> bool:
        """Every shard resolves the whole subscription; a refused tag is reported by the shard owning it (by its
        WebID, or by the reference itself when PI refused to resolve it)."""
        return self.shard.owns(tag.web_id or tag.ref)

    def _write_status(self, final: bool = False) -> None:
        document = self.status()
        if final:
            document["state"] = "stopped"
        state.write_json(self.state_dir / state.STATUS_FILE, document)
