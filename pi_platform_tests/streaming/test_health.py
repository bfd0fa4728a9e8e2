"""Health decisions from the collector's status and the table: silent stream, channel trouble, stale tags."""

import time

import pyarrow as pa

from pi_platform.streaming.health import StalenessPolicy, channel_health, stream_silence, tag_staleness
from pi_platform.streaming.rhythm import StreamRhythm

POLICY = StalenessPolicy(warn_factor=3, error_factor=6, min_interval_s=1, default_interval_s=60, silent_after_s=30)


def _status(now: float, **overrides) -> dict:
    status = {"state": "running", "heartbeat_at": now - 1, "started_at": now - 100, "dead_channels": 0,
              "connections": [{"name": "c1", "state": "open", "last_message_at": now - 1, "last_error": None}]}
    return {**status, **overrides}


def test_silent_stream_is_error_whether_the_collector_or_the_data_stopped():
    now = time.time()
    assert not stream_silence(_status(now), now - 2, POLICY, now).silent
    assert stream_silence(_status(now), now - 31, POLICY, now).silent  # alive, but no rows: silent
    assert stream_silence(_status(now, heartbeat_at=now - 31), now - 2, POLICY, now).silent  # collector hung
    assert stream_silence(_status(now, state="stopped"), now - 2, POLICY, now).silent
    assert stream_silence(None, None, POLICY, now).silent


def test_channel_down_is_error_and_a_watchdog_firing_is_warn():
    now = time.time()
    assert channel_health(_status(now), previous_dead=0, now=now).healthy
    down = _status(now, connections=[{"name": "c1", "state": "backoff", "last_message_at": now - 40,
                                      "last_error": "channel closed (code 1006)"}])
    assert channel_health(down, 0, now=now).severity == "ERROR"
    fired = channel_health(_status(now, dead_channels=2), previous_dead=1, now=now)
    assert fired.severity == "WARN" and "DeadChannelError" in fired.problems[0] and fired.dead_channels == 2
    assert channel_health(_status(now, dead_channels=2), previous_dead=2, now=now).healthy


def test_tag_staleness_is_relative_to_each_tags_own_rhythm():
    """The rhythm is learned from committed rows exactly as the collector does, then judged."""
    now = time.time()
    rhythm = StreamRhythm()
    for name, interval, silent_for in (("fast", 1.0, 4.0), ("slow", 600.0, 1200.0), ("dead", 1.0, 30.0)):
        last = now - silent_for
        stamps = [last - k * interval for k in range(20)]
        rhythm.update(pa.table({
            "web_id": [name] * 20, "name": [name.upper()] * 20,
            "timestamp": pa.array([int(t * 1e6) for t in stamps], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        }))
    published = {"written_at": now, "tags": rhythm.snapshot()}
    expected = {"fast": now - 3600, "slow": now - 3600, "dead": now - 3600, "never": now - 3600, "new": now - 5}
    report = tag_staleness(published, POLICY, expected=expected, now=now + 2)
    assert report.warn == {"FAST": 4.0}  # 4 s silent at a 1 s rhythm: > 3x (aged at the snapshot, not +2 s)
    assert set(report.error) == {"DEAD"}  # 30 s at 1 s: > 6x; SLOW, 20 min at a 10 min rhythm, is fine
    assert report.missing == ["never"]  # subscribed an hour ago, nothing; "new" still has time
    assert report.severity == "ERROR" and report.tags == 3

    # A collector that stopped publishing: ages run on to now, so everything turns stale.
    later = tag_staleness(published, POLICY, expected=expected, now=now + 3600)
    assert set(later.error) == {"FAST", "DEAD", "SLOW"}
