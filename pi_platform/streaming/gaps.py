"""The gap ledger: every time interval `stream_values` may be missing for a stream, until a read of it committed.

Why a ledger and not "look back from the high-water mark": the high-water mark moves as soon as fresh
channel values commit, so a backfill that failed (PI Web API's REST side often fails for a while after a
channel came back) or a crash between a reconnect and its backfill would leave a hole that no later
reconnect looks at. Here an interval is written down (fsync'd) *before* the channel that follows it
delivers its first message, and it is closed only after the Delta commit holding the complete read of
exactly that interval. Until then it is retried with backoff, however long PI takes.

File `<state_dir>/gaps.json` (atomic replace + fsync of file and directory):

    {"gaps": [{"id", "reason", "opened_at", "end_us" (null while a channel is still down),
               "starts": {web_id: start_us}, "attempts", "last_error", "next_try_at"}]}

One entry is one event (a connection (re)opened, the collector restarted, damaged WAL records) with each
stream's own start (its last known value time minus the correction look-back), read as one multi-stream
`recorded` request group.
"""

import logging
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

GAPS_FILE = "gaps.json"


@dataclass
class Gap:
    id: str
    reason: str
    opened_at: float
    end_us: int | None  # None: still growing (its channel is down); pinned when the channel reopens
    starts: dict[str, int]
    attempts: int = 0
    last_error: str | None = None
    next_try_at: float = 0.0
    connection: str | None = None  # the connection whose reopening pins `end_us`

    @property
    def start_us(self) -> int:
        return min(self.starts.values())

    def summary(self, now: float) -> dict:
        """What status.json, the check and the alert show."""
        return {"id": self.id, "reason": self.reason, "streams": len(self.starts), "start_us": self.start_us,
                "end_us": self.end_us, "age_s": round(now - self.opened_at, 1), "attempts": self.attempts,
                "last_error": self.last_error}


def durable_write(path: Path, data: object) -> None:
    """Temp file + fsync + rename + directory fsync: after return the content survives a power cut."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read(path: Path) -> dict:
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_gaps(state_dir: str | os.PathLike[str]) -> list[Gap]:
    """The open gaps a collector left in `state_dir` (readers: status, Dagster checks)."""
    data = _read(Path(state_dir) / GAPS_FILE)
    return [Gap(**{**g, "starts": {k: int(v) for k, v in g["starts"].items()}}) for g in data.get("gaps", [])]


class GapLedger:
    """Open gaps, persisted on every change; the collector is the only writer."""

    def __init__(self, state_dir: Path, *, retry_initial_s: float = 1.0, retry_max_s: float = 60.0) -> None:
        self.path = Path(state_dir) / GAPS_FILE
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.gaps: dict[str, Gap] = {g.id: g for g in read_gaps(state_dir)}
        self.adopted: set[str] = set(_read(self.path).get("adopted", []))  # gap ids taken over from another layout
        self.closed = 0

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        durable_write(self.path, {"gaps": [asdict(g) for g in self.gaps.values()], "adopted": sorted(self.adopted)})

    def adopt(self, gaps: list[Gap], owns: Callable[[str], bool]) -> int:
        """Take over another shard layout's open gaps for the streams this collector owns now (a re-shard), once
        each: the new owner reads them like its own. Returns how many were adopted."""
        taken = 0
        for gap in gaps:
            starts = {w: s for w, s in gap.starts.items() if owns(w)}
            if gap.id in self.adopted or not starts:
                continue
            self.gaps[gap.id] = Gap(gap.id, f"{gap.reason}, handed over", time.time(), gap.end_us, starts)
            self.adopted.add(gap.id)
            taken += 1
            log.info("gap %s adopted from another shard layout (%s): %d streams from %s", gap.id, gap.reason,
                     len(starts), iso_us(min(starts.values())))
        if taken:
            self._save()
        return taken

    def open(self, reason: str, starts: dict[str, int], end_us: int | None, connection: str | None = None) -> Gap:
        """Record an interval per stream; durable when this returns."""
        gap = Gap(uuid.uuid4().hex[:12], reason, time.time(), end_us, dict(starts), connection=connection)
        self.gaps[gap.id] = gap
        self._save()
        log.info("gap %s opened (%s): %d streams from %s", gap.id, reason, len(starts), iso_us(gap.start_us))
        return gap

    def pin(self, connection: str | None, end_us: int, starts: dict[str, int]) -> list[Gap]:
        """A connection reopened: its growing gaps end now, and start no later than `starts` says."""
        pinned = [g for g in self.gaps.values() if g.end_us is None and (connection is None or g.connection == connection)]
        for gap in pinned:
            gap.end_us = end_us
            for web_id, start in starts.items():
                if web_id in gap.starts:
                    gap.starts[web_id] = min(gap.starts[web_id], start)
            gap.next_try_at = 0.0
        if pinned:
            self._save()
        return pinned

    def due(self, now: float) -> list[Gap]:
        """Gaps to read now: pinned, past their end (a channel's gap ends a little after it opened), not backing off."""
        return [g for g in self.gaps.values()
                if g.end_us is not None and g.end_us <= now * 1e6 and g.next_try_at <= now and g.starts]

    def failed(self, gap_id: str, error: str) -> float:
        """Count a failed read of the gap; returns the delay before the next attempt."""
        gap = self.gaps.get(gap_id)
        if gap is None:
            return 0.0
        gap.attempts += 1
        gap.last_error = error
        delay = random.uniform(0.5, 1.0) * min(self.retry_max_s, self.retry_initial_s * 2 ** min(gap.attempts, 16))
        gap.next_try_at = time.time() + delay
        self._save()
        return delay

    def close(self, gap_id: str) -> None:
        """Only after the commit that holds the complete read of the gap."""
        if self.gaps.pop(gap_id, None) is not None:
            self.closed += 1
            self._save()

    def drop_streams(self, web_ids: set[str]) -> None:
        """Streams no longer read (bad tags): their gaps are reported as bad tags, not retried."""
        changed = False
        for gap in list(self.gaps.values()):
            if web_ids & gap.starts.keys():
                gap.starts = {w: s for w, s in gap.starts.items() if w not in web_ids}
                changed = True
                if not gap.starts:
                    del self.gaps[gap.id]
        if changed:
            self._save()

    def summaries(self, now: float) -> list[dict]:
        return [g.summary(now) for g in sorted(self.gaps.values(), key=lambda g: g.opened_at)]


def iso_us(us: int) -> str:
    """Microseconds since the epoch as a UTC second, for log lines and the status screen."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us / 1e6))
