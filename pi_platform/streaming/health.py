"""Is the stream healthy? Per-tag staleness, whole-stream silence and channel health, without Dagster.

Per tag, "stale" is relative to the tag's own rhythm: a tag that updates every second is stale after a
few seconds of silence, one that updates hourly is not. The usual interval is the median gap between the
tag's distinct timestamps in the look-back window; a tag is WARN-stale past `warn_factor` x that interval
and ERROR-stale past `error_factor` x it. A subscribed tag with no value at all in the window is ERROR
once it has been subscribed for `error_factor` x the default interval (a new tag gets that long to speak).
Only the look-back window is read (file statistics prune the rest), so the check stays cheap on a big table.
"""

import time
from dataclasses import dataclass, field

import numpy as np
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
    lookback_s: float = 3600.0  # read per evaluation; ~3.6M rows for 1,000 tags at 1 value/s
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
    table_uri: str,
    policy: StalenessPolicy,
    *,
    expected: dict[str, float] | None = None,
    storage_options: dict[str, str] | None = None,
    now: float | None = None,
) -> TagStaleness:
    """`expected`: subscribed WebIds -> since when (epoch s) they are subscribed; None = whatever is in the table."""
    now = time.time() if now is None else now
    grace = policy.error_factor * policy.default_interval_s
    overdue = sorted(w for w, since in (expected or {}).items() if now - since > grace)
    if not DeltaTable.is_deltatable(table_uri, storage_options=storage_options):
        return TagStaleness(now, 0, missing=overdue)
    since = pa.scalar(int((now - policy.lookback_s) * 1e6), pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    dataset = DeltaTable(table_uri, storage_options=storage_options).to_pyarrow_dataset()
    rows = dataset.to_table(columns=["web_id", "name", "timestamp"], filter=ds.field("timestamp") >= since)
    if expected is not None:
        rows = rows.filter(pc.is_in(rows["web_id"], pa.array(sorted(set(expected)), pa.string())))
    seen = set(rows["web_id"].unique().to_pylist()) if rows.num_rows else set()
    missing = [w for w in overdue if w not in seen]
    if rows.num_rows == 0:
        return TagStaleness(now, 0, missing=missing)
    rows = rows.sort_by([("web_id", "ascending"), ("timestamp", "ascending")])
    web_ids = rows["web_id"].to_numpy(zero_copy_only=False)
    ts = rows["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False) / 1e6
    names = rows["name"].to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, web_ids[1:] != web_ids[:-1]])
    ends = np.r_[starts[1:], len(ts)]
    warn: dict[str, float] = {}
    error: dict[str, float] = {}
    for lo, hi in zip(starts, ends, strict=True):
        distinct = np.unique(ts[lo:hi])
        interval = float(np.median(np.diff(distinct))) if len(distinct) > 1 else policy.default_interval_s
        interval = max(interval, policy.min_interval_s)
        age = now - distinct[-1]
        label = str(names[hi - 1] or web_ids[lo])
        if age > policy.error_factor * interval:
            error[label] = round(age, 1)
        elif age > policy.warn_factor * interval:
            warn[label] = round(age, 1)
    newest = float(ts.max())
    return TagStaleness(now, len(starts), warn, error, missing, newest, now - newest)


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
    now = time.time() if now is None else now
    if not DeltaTable.is_deltatable(table_uri, storage_options=storage_options):
        return None
    since = pa.scalar(int((now - policy.lookback_s) * 1e6), pa.int64()).cast(pa.timestamp("us", tz="UTC"))
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
