"""Write-ahead log: every channel message is on disk (fsync'd) before the collector does anything with it.

Why a WAL and not "re-read PI after a crash": PI's recorded values are what the archive kept, and a
channel can deliver snapshot values that compression never archives; the WAL keeps exactly what PI sent.

Layout: segment files `<start offset>.wal` in one directory; a record is

    u32 body length | u32 crc32(body) | body = i64 received_at_ns | u16 len(source) | source | payload

Offsets are global byte positions across segments, so "everything up to offset N" is one integer: the
collector commits it to Delta as the application-transaction version of the batch holding those records,
and a restart replays exactly the records after the committed offset.

Appends use group commit: concurrent appends wait for one write + fsync that covers all of them, so fsync
cost is per flush, not per message. The in-memory tail (fsync'd records not yet taken by the batcher) is
the collector's buffer; `append` waits while it holds more than `max_buffer_bytes`, which is how slow
storage pushes back to the sockets (and, through TCP, to the server) instead of growing memory.
"""

import asyncio
import logging
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
_HEADER = struct.Struct("<II")
_META = struct.Struct("<qH")
_SUFFIX = ".wal"


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One channel message as received; `end` is the global offset just after it (its commit token)."""

    end: int
    received_at_ns: int
    source: str
    payload: bytes


def _frame(received_at_ns: int, source: str, payload: bytes) -> bytes:
    src = source.encode()
    body = _META.pack(received_at_ns, len(src)) + src + payload
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def _segment_name(start: int) -> str:
    return f"{start:020d}{_SUFFIX}"


@dataclass(frozen=True, slots=True)
class WalDamage:
    """Damaged bytes skipped on open: where, how much, and the receive times around them (to re-read from PI)."""

    offset: int  # global byte offset of the first damaged byte
    bytes: int
    records: int  # records lost (at least this many when `exact` is false: the length field was damaged too)
    exact: bool
    after_ns: int | None  # receive time of the last good record before the damage
    before_ns: int | None  # receive time of the first good record after it (None: damage to the end)


def _record_at(data: bytes, pos: int, start: int) -> WalRecord | None:
    if pos + _HEADER.size > len(data):
        return None
    length, crc = _HEADER.unpack_from(data, pos)
    body_start = pos + _HEADER.size
    if length < _META.size or body_start + length > len(data):
        return None
    body = data[body_start : body_start + length]
    if zlib.crc32(body) != crc:
        return None
    received_at_ns, src_len = _META.unpack_from(body)
    if _META.size + src_len > length:
        return None
    source = body[_META.size : _META.size + src_len].decode(errors="replace")
    return WalRecord(start + body_start + length, received_at_ns, source, bytes(body[_META.size + src_len :]))


def _read_records(path: Path, start: int) -> tuple[list[WalRecord], int, list[WalDamage]]:
    """Valid records of one segment, the byte length up to the last of them, and the damage skipped between.

    A bad record is skipped by resynchronising on the next position where a record with a valid checksum
    starts; with no valid record after it, it is a torn tail (the caller decides what that means).
    """
    data = path.read_bytes()
    records: list[WalRecord] = []
    damages: list[WalDamage] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        record = _record_at(data, pos, start)
        if record is not None:
            records.append(record)
            pos = record.end - start
            continue
        nxt = next((p for p in range(pos + 1, len(data) - _HEADER.size + 1) if _record_at(data, p, start)), None)
        if nxt is None:
            break
        length = _HEADER.unpack_from(data, pos)[0]
        after = records[-1].received_at_ns if records else None
        following = _record_at(data, nxt, start)
        damages.append(WalDamage(start + pos, nxt - pos, 1, pos + _HEADER.size + length == nxt, after,
                                 following.received_at_ns if following else None))
        pos = nxt
    return records, pos, damages


def durable_end(directory: str | os.PathLike[str]) -> int:
    """Global offset after the last byte on disk, without opening the log (another process may own it): what a
    re-shard compares with the committed offset. A torn tail counts, so the answer errs on "not committed yet"."""
    ends = []
    for path in Path(directory).glob(f"*{_SUFFIX}"):
        try:
            ends.append(int(path.stem) + path.stat().st_size)
        except (ValueError, FileNotFoundError):
            continue
    return max(ends, default=0)


class WriteAheadLog:
    """Append-only, crash-safe log of channel messages with a bounded in-memory tail for the batcher."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = 64 << 20,
        max_buffer_bytes: int = 256 << 20,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.fsync = fsync
        self._file: "os.FileIO | None" = None
        self._segment_start = 0
        self._end = 0  # global offset after the last durable record
        self._tail: deque[WalRecord] = deque()
        self._tail_bytes = 0
        self._pending: list[tuple[tuple[int, str, bytes], asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._room: asyncio.Event | None = None
        self._arrived: asyncio.Event | None = None
        self.damages: list[WalDamage] = []  # found by open()
        self.write_error: str | None = None  # set while appends wait for the disk (e.g. full)

    # ------------------------------------------------------------------ open and replay
    def open(self, committed: int) -> list[WalRecord]:
        """Recover the log and return the durable records after `committed` (to be processed again).

        A torn record at the end of the last segment (a crash mid-write) is cut off: it was never
        acknowledged, so its message was never processed. Damage anywhere else (a bad disk block) is
        skipped with a warning and listed in `damages`, whose receive-time ranges the collector re-reads
        from PI; stopping would lose everything after it instead. If the log is behind `committed` (its directory
        was wiped or restored from an old copy) it restarts at `committed`, so new batches get versions
        above what the table already holds instead of being mistaken for committed ones.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = self._segments()
        replay: list[WalRecord] = []
        end = 0
        for index, (start, path) in enumerate(segments):
            records, valid, damages = _read_records(path, start)
            size = path.stat().st_size
            if valid != size:
                if index < len(segments) - 1:  # not a torn tail: the rest of a finished segment is lost
                    after = records[-1].received_at_ns if records else None
                    damages.append(WalDamage(start + valid, size - valid, 1, False, after, None))
                else:
                    with open(path, "r+b") as fh:
                        fh.truncate(valid)
                        os.fsync(fh.fileno())
            for damage in damages:
                if damage.offset + damage.bytes > committed:
                    log.warning("write-ahead log %s: damaged record at byte offset %d: skipped %s%d record(s) "
                                "(%d bytes); that time range is re-read from PI", path.name, damage.offset,
                                "" if damage.exact else "at least ", damage.records, damage.bytes)
                    self.damages.append(damage)
            replay.extend(r for r in records if r.end > committed)
            end = start + valid
        if end < committed or not segments:
            end = max(end, committed)
            self._start_segment(end)
        else:
            self._segment_start, path = segments[-1]
            self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the log
        self._end = end
        for record in replay:
            self._push(record)
        return replay

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.glob(f"*{_SUFFIX}"):
            try:
                found.append((int(path.stem), path))
            except ValueError:
                continue
        return sorted(found)

    def _start_segment(self, start: int) -> None:
        if self._file is not None:
            self._file.close()
        path = self.directory / _segment_name(start)
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115
        self._segment_start = start
        if self.fsync:  # the new directory entry must survive a crash too
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ appends
    @property
    def end(self) -> int:
        return self._end

    @property
    def buffered_bytes(self) -> int:
        return self._tail_bytes

    @property
    def buffered_records(self) -> int:
        return len(self._tail)

    @property
    def oldest_received_ns(self) -> int | None:
        """Receive time of the oldest record waiting in the tail (what a micro-batch's age is measured by)."""
        return self._tail[0].received_at_ns if self._tail else None

    def append_sync(self, items: list[tuple[int, str, bytes]]) -> list[int]:
        """Write and fsync records (received_at_ns, source, payload) now, without back-pressure (tools, tests)."""
        ends = self._write([_frame(*item) for item in items])
        for item, end in zip(items, ends, strict=True):
            self._push(WalRecord(end, *item))
        return ends

    async def append(self, received_at_ns: int, source: str, payload: bytes) -> int:
        """Durably log one message; returns its end offset once it is fsync'd and visible to `take`."""
        while self._tail_bytes >= self.max_buffer_bytes:
            await self._room_event().wait()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(((received_at_ns, source, payload), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_pending())
        return await future

    async def _flush_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            frames = [_frame(*item) for item, _ in group]
            delay, failed_at = 1.0, None
            while True:
                try:
                    ends = await asyncio.to_thread(self._write, frames)
                    break
                except OSError as exc:
                    # Disk full or failing: the messages stay in memory (sockets are pushed back through the
                    # waiting appends) and the write is retried until the disk takes it again.
                    self._rollback()
                    if failed_at is None:
                        failed_at = time.monotonic()
                        self.write_error = f"{os.strerror(exc.errno) if exc.errno else exc} ({self.directory})"
                        log.error("write-ahead log write failed: %s; holding %d messages in memory and retrying "
                                  "until the disk has room", self.write_error, len(group))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
            if failed_at is not None:
                log.warning("write-ahead log writable again after %.0fs; nothing was lost", time.monotonic() - failed_at)
                self.write_error = None
            for (item, future), end in zip(group, ends, strict=True):
                self._push(WalRecord(end, *item))
                if not future.done():
                    future.set_result(end)

    def _write(self, frames: list[bytes]) -> list[int]:
        """Append frames to the active segment (rotating when full) and fsync; returns their end offsets."""
        assert self._file is not None, "open() the log first"
        ends: list[int] = []
        chunk: list[bytes] = []
        position = self._end
        for frame in frames:
            if position - self._segment_start >= self.segment_bytes:
                self._flush_chunk(chunk)
                chunk = []
                self._start_segment(position)
            chunk.append(frame)
            position += len(frame)
            ends.append(position)
        self._flush_chunk(chunk)
        self._end = position
        return ends

    def _flush_chunk(self, chunk: list[bytes]) -> None:
        if not chunk:
            return
        assert self._file is not None
        self._file.write(b"".join(chunk))
        if self.fsync:
            os.fsync(self._file.fileno())

    def _rollback(self) -> None:
        """Cut the log back to its last durable end after a failed write (a partial frame must not remain)."""
        assert self._file is not None
        for start, path in self._segments():
            if start > self._end:
                path.unlink(missing_ok=True)
        start = max(s for s, _ in self._segments() if s <= self._end)
        if start != self._segment_start:
            self._file.close()
            self._file = open(self.directory / _segment_name(start), "ab", buffering=0)  # noqa: SIM115
            self._segment_start = start
        os.ftruncate(self._file.fileno(), self._end - start)

    def _push(self, record: WalRecord) -> None:
        self._tail.append(record)
        self._tail_bytes += len(record.payload)
        if self._arrived is not None:
            self._arrived.set()
        if self._tail_bytes >= self.max_buffer_bytes:
            self._room_event().clear()

    # ------------------------------------------------------------------ consumption
    def take(self, max_bytes: int) -> list[WalRecord]:
        """Remove and return durable records in log order, at least one, up to about `max_bytes`."""
        taken: list[WalRecord] = []
        size = 0
        while self._tail and (not taken or size + len(self._tail[0].payload) <= max_bytes):
            record = self._tail.popleft()
            size += len(record.payload)
            taken.append(record)
        self._tail_bytes -= size
        if self._arrived is not None and not self._tail:
            self._arrived.clear()
        if self._tail_bytes < self.max_buffer_bytes:
            self._room_event().set()
        return taken

    async def wait_for_records(self, timeout: float) -> bool:
        """True as soon as the tail holds a record, False after `timeout` seconds without one."""
        if self._tail:
            return True
        if self._arrived is None:
            self._arrived = asyncio.Event()
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout)
        except TimeoutError:
            return False
        return bool(self._tail)

    def truncate_before(self, committed: int) -> int:
        """Delete whole segments whose records all lie at or below `committed`; returns how many."""
        removed = 0
        segments = self._segments()
        for (start, path), (next_start, _) in zip(segments, segments[1:]):
            if next_start <= committed and start != self._segment_start:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def records(self, after: int = 0) -> Iterator[WalRecord]:
        """Every durable record after `after`, read from disk (inspection and tests)."""
        for start, path in self._segments():
            records, _, _ = _read_records(path, start)
            yield from (r for r in records if r.end > after)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _room_event(self) -> asyncio.Event:
        if self._room is None:
            self._room = asyncio.Event()
            self._room.set()
        return self._room
