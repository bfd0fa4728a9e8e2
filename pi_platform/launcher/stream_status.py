"""The stream collector's state as one terminal line, read from the status file it rewrites every second.

`up` prints it every few seconds so the terminal shows the live side too: throughput, rows committed, open gaps,
stale tags and the worst problem. Fields the collector does not (yet) publish are left out, not guessed.
"""

import time
from pathlib import Path
from typing import Any

from pi_platform.streaming.state import read_status

HEARTBEAT_STALE_S = 10


def _count(value: Any) -> int | None:
    if isinstance(value, (list, dict)):
        return len(value)
    return value if isinstance(value, int) else None


def status_line(state_dir: Path, now: float | None = None) -> str:
    status = read_status(state_dir)
    if status is None:
        return "stream collector: not started yet (the stream_collector sensor starts it within a minute)"
    now = time.time() if now is None else now
    age = now - float(status.get("heartbeat_at") or 0)
    state = status.get("state") or "?"
    if state == "running" and age > HEARTBEAT_STALE_S:
        state = f"silent for {age:.0f} s"
    shard = f" shard {status['shard']}" if status.get("shard", "1/1") != "1/1" else ""
    parts = [f"stream collector{shard} (pid {status.get('pid')}): {state}"]
    throughput = status.get("throughput") or {}
    if "values_per_s" in throughput and status.get("state") == "running":
        parts.append(f"{throughput['values_per_s']:,.0f} values/s")
    if "total_rows_committed" in status:
        parts.append(f"{status['total_rows_committed']:,} rows committed")
    subscription = status.get("subscription") or {}
    if "streams" in subscription:
        parts.append(f"{subscription['streams']} tags")
    for key, label in (("gaps", "open gaps"), ("stale_tags", "stale tags")):
        count = _count(status.get(key))
        if count is not None:
            parts.append(f"{count} {label}")
    line = ", ".join(parts)
    problems = status.get("problems") or []
    if problems:
        first = problems[0]
        message = first.get("message") if isinstance(first, dict) else str(first)
        line += f"; {len(problems)} problem(s), first: {message}"
    return line
