"""Health decisions from the collector's status and the table: silent stream, channel trouble."""

import time

from pi_platform.streaming.health import channel_health, stream_silence

SILENT_AFTER_S = 30.0


def _status(now: float, **overrides) -> dict:
    status = {"state": "running", "heartbeat_at": now - 1, "started_at": now - 100, "dead_channels": 0,
              "connections": [{"name": "c1", "state": "open", "last_message_at": now - 1, "last_error": None}]}
    return {**status, **overrides}


def test_silent_stream_is_error_whether_the_collector_or_the_data_stopped():
    now = time.time()
    assert not stream_silence(_status(now), now - 2, SILENT_AFTER_S, now).silent
    assert stream_silence(_status(now), now - 31, SILENT_AFTER_S, now).silent  # alive, but no rows: silent
    assert stream_silence(_status(now, heartbeat_at=now - 31), now - 2, SILENT_AFTER_S, now).silent  # collector hung
    assert stream_silence(_status(now, state="stopped"), now - 2, SILENT_AFTER_S, now).silent
    assert stream_silence(None, None, SILENT_AFTER_S, now).silent


def test_channel_down_is_error_and_a_watchdog_firing_is_warn():
    now = time.time()
    assert channel_health(_status(now), previous_dead=0, now=now).healthy
    down = _status(now, connections=[{"name": "c1", "state": "backoff", "last_message_at": now - 40,
                                      "last_error": "channel closed (code 1006)"}])
    assert channel_health(down, 0, now=now).severity == "ERROR"
    fired = channel_health(_status(now, dead_channels=2), previous_dead=1, now=now)
    assert fired.severity == "WARN" and "DeadChannelError" in fired.problems[0] and fired.dead_channels == 2
    assert channel_health(_status(now, dead_channels=2), previous_dead=2, now=now).healthy
