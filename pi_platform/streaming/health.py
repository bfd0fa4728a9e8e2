"""Is the stream healthy? Whole-stream silence and channel health, without Dagster.

Per-tag staleness is judged on PI's own terms in staleness.py; this module answers the questions about the
collector and its sockets.
"""

import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import STREAM_VALUES


@dataclass(frozen=True)
class StreamSilence:
    silent: bool
    reason: str
    heartbeat_age_s: float | None
    last_rows_age_s: float | None


def stream_silence(status: dict | None, newest_received_at: float | None, silent_after_s: float,
                   now: float | None = None) -> StreamSilence:
    """The whole stream is silent when no collector heartbeat or no new rows arrived for `silent_after_s`."""
    now = time.time() if now is None else now
    heartbeat_age = None if not status else now - float(status.get("heartbeat_at") or 0)
    rows_age = None if newest_received_at is None else now - newest_received_at
    if status is None:
        return StreamSilence(True, "no collector status file: the collector never ran here", None, rows_age)
    if status.get("state") != "running" or heartbeat_age is None or heartbeat_age > silent_after_s:
        return StreamSilence(True, f"collector {status.get('state')}, last heartbeat {heartbeat_age:.0f}s ago",
                             heartbeat_age, rows_age)
    if rows_age is None or rows_age > silent_after_s:
        what = "no rows yet" if rows_age is None else f"newest row received {rows_age:.0f}s ago"
        return StreamSilence(True, f"collector alive but {what}", heartbeat_age, rows_age)
    return StreamSilence(False, f"rows flowing (newest received {rows_age:.0f}s ago)", heartbeat_age, rows_age)


def worst_silence(silences: list[tuple[str, StreamSilence]]) -> StreamSilence:
    """Across sharded collectors: silent when any shard is (named); otherwise the first shard's reading."""
    if len(silences) == 1:
        return silences[0][1]
    silent = [(label, s) for label, s in silences if s.silent]
    ages = [s.heartbeat_age_s for _, s in silences if s.heartbeat_age_s is not None]
    first = silences[0][1]
    if not silent:
        return StreamSilence(False, first.reason, max(ages, default=None), first.last_rows_age_s)
    reason = "; ".join(f"shard {label}: {s.reason}" for label, s in silent)
    return StreamSilence(True, reason, max(ages, default=None), first.last_rows_age_s)


def newest_received_at(store: DeltaStore, silent_after_s: float, now: float | None = None) -> float | None:
    """Receive time of the newest stream_values row, looking only as far back as silence matters (file
    statistics prune), on whatever lake the store points at (local or object storage)."""
    now = time.time() if now is None else now
    if not store.exists(STREAM_VALUES.name):
        return None
    since = pa.scalar(int((now - 2 * silent_after_s) * 1e6), pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    column = store.read(STREAM_VALUES.name, columns=["received_at"], filter=ds.field("received_at") >= since)["received_at"]
    newest = pc.max(column)
    return None if not newest.is_valid else newest.value / 1e6


@dataclass(frozen=True)
class ChannelHealth:
    healthy: bool
    severity: str | None
    problems: list[str]
    dead_channels: int


def channel_health(status: dict | None, previous_dead: int, *, down_after_s: float = 30.0,
                   now: float | None = None) -> ChannelHealth:
    """ERROR when a connection is down longer than `down_after_s`; WARN when the watchdog fired since last time."""
    now = time.time() if now is None else now
    if not status:
        return ChannelHealth(False, "ERROR", ["no collector status"], previous_dead)
    problems: list[str] = []
    severity = None
    for conn in status.get("connections", []):
        if conn.get("state") != "open":
            since = conn.get("last_message_at") or status.get("started_at") or now
            if now - since > down_after_s:
                severity = "ERROR"
                problems.append(f"{conn['name']} {conn['state']} for {now - since:.0f}s: {conn.get('last_error')}")
    dead = int(status.get("dead_channels") or 0)
    if dead > previous_dead:
        severity = severity or "WARN"
        problems.append(f"dead-channel watchdog fired {dead - previous_dead} time(s) (DeadChannelError)")
    return ChannelHealth(not problems, severity, problems, dead)


def channel_health_all(statuses: list[tuple[str, dict | None]], previous_dead: int, *, down_after_s: float = 30.0,
                       now: float | None = None) -> ChannelHealth:
    """Across sharded collectors: connections down in any shard (named), and the watchdog judged on the total."""
    if len(statuses) == 1:
        return channel_health(statuses[0][1], previous_dead, down_after_s=down_after_s, now=now)
    problems: list[str] = []
    severity = None
    dead = 0
    for label, status in statuses:
        own = int((status or {}).get("dead_channels") or 0)
        state = channel_health(status, own, down_after_s=down_after_s, now=now)  # its connections only
        problems += [f"shard {label}: {p}" for p in state.problems]
        severity = severity or state.severity
        dead += own
    if dead > previous_dead:
        severity = severity or "WARN"
        problems.append(f"dead-channel watchdog fired {dead - previous_dead} time(s) (DeadChannelError)")
    return ChannelHealth(not problems, severity, problems, dead)
