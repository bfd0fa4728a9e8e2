"""Is the stream healthy? Per-tag staleness, whole-stream silence and channel health, without Dagster.

Per tag, "stale" is relative to the tag's own rhythm: a tag that updates every second is stale after a
few seconds of silence, one that updates hourly is not. The collector publishes each tag's last committed
value time and usual interval (rhythm.py, tags.json); a tag is WARN-stale past `warn_factor` x its interval
and ERROR-stale past `error_factor` x it. A subscribed tag that never delivered a value is ERROR once it has
been subscribed for `error_factor` x the default interval (a new tag gets that long to speak). No table
scan per evaluation, and slow tags are judged by their own rhythm however long ago they last spoke.
"""

import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable


@dataclass(frozen=True)
class StalenessPolicy:
    warn_factor: float = 3.0
    error_factor: float = 10.0
    min_interval_s: float = 1.0  # never call a tag stale faster than this times the factor
    default_interval_s: float = 60.0  # for tags with fewer than two values in the window
    silent_after_s: float = 120.0  # no commit with rows for this long: the whole stream is silent


@dataclass(frozen=True)
class TagStaleness:
    now: float
    tags: int
    warn: dict[str, float] = field(default_factory=dict)  # name -> seconds since last value
    error: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # subscribed WebIds with no value in the window
    newest_timestamp: float | None = None
    max_lag_s: float | None = None

    @property
    def severity(self) -> str | None:
        if self.error or self.missing:
            return "ERROR"
        return "WARN" if self.warn else None


def tag_staleness(
    published: dict | None,
    policy: StalenessPolicy,
    *,
    expected: dict[str, float] | None = None,
    now: float | None = None,
) -> TagStaleness:
    """`published`: the collector's tags.json (`written_at`, `tags`: web_id -> [name, last value time, usual
    interval]); `expected`: subscribed WebIds -> since when they are subscribed (None: every published tag).

    Ages are taken at the snapshot's time while the collector keeps publishing, so a snapshot a few seconds
    old never makes a healthy fast tag look stale; once it stops publishing, ages run on to now (and
    `stream_flowing` reports the collector itself)."""
    now = time.time() if now is None else now
    published = published if isinstance(published, dict) else {}
    tags = published.get("tags") or {}
    written_at = float(published.get("written_at") or 0.0)
    if now - written_at < policy.silent_after_s:
        now = written_at
    grace = policy.error_factor * policy.default_interval_s
    judged = list(expected) if expected is not None else list(tags)
    warn: dict[str, float] = {}
    error: dict[str, float] = {}
    missing: list[str] = []
    newest: float | None = None
    for web_id in judged:
        if web_id not in tags:
            if expected is not None and now - expected[web_id] > grace:
                missing.append(web_id)
            continue
        name, last, interval = tags[web_id]
        newest = last if newest is None else max(newest, last)
        interval = max(interval if interval is not None else policy.default_interval_s, policy.min_interval_s)
        age = now - last
        label = name or web_id
        if age > policy.error_factor * interval:
            error[label] = round(age, 1)
        elif age > policy.warn_factor * interval:
            warn[label] = round(age, 1)
    seen = sum(1 for w in judged if w in tags)
    return TagStaleness(now, seen, warn, error, sorted(missing), newest, None if newest is None else now - newest)


@dataclass(frozen=True)
class StreamSilence:
    silent: bool
    reason: str
    heartbeat_age_s: float | None
    last_rows_age_s: float | None


def stream_silence(status: dict | None, newest_received_at: float | None, policy: StalenessPolicy,
                   now: float | None = None) -> StreamSilence:
    """The whole stream is silent when no collector heartbeat or no new rows arrived for `silent_after_s`."""
    now = time.time() if now is None else now
    heartbeat_age = None if not status else now - float(status.get("heartbeat_at") or 0)
    rows_age = None if newest_received_at is None else now - newest_received_at
    if status is None:
        return StreamSilence(True, "no collector status file: the collector never ran here", None, rows_age)
    if status.get("state") != "running" or heartbeat_age is None or heartbeat_age > policy.silent_after_s:
        return StreamSilence(True, f"collector {status.get('state')}, last heartbeat {heartbeat_age:.0f}s ago",
                             heartbeat_age, rows_age)
    if rows_age is None or rows_age > policy.silent_after_s:
        what = "no rows yet" if rows_age is None else f"newest row received {rows_age:.0f}s ago"
        return StreamSilence(True, f"collector alive but {what}", heartbeat_age, rows_age)
    return StreamSilence(False, f"rows flowing (newest received {rows_age:.0f}s ago)", heartbeat_age, rows_age)


def newest_received_at(table_uri: str, policy: StalenessPolicy, storage_options: dict[str, str] | None = None,
                       now: float | None = None) -> float | None:
    """Receive time of the newest row, looking only as far back as silence matters (file statistics prune)."""
    now = time.time() if now is None else now
    if not DeltaTable.is_deltatable(table_uri, storage_options=storage_options):
        return None
    since = pa.scalar(int((now - 2 * policy.silent_after_s) * 1e6), pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    dataset = DeltaTable(table_uri, storage_options=storage_options).to_pyarrow_dataset()
    column = dataset.to_table(columns=["received_at"], filter=ds.field("received_at") >= since)["received_at"]
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
