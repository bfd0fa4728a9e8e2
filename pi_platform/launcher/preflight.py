"""What `pi-platform up` checks before it starts anything, so a mistake costs seconds, not a failed backfill.

The settings (every `PI_*` value that can be malformed), the `--partition` argument (syntax, order, and the
partitions that exist), the ports, and - when `PI_WEBAPI_URL` names a real server - the doctor's reachability,
TLS and auth checks with a short timeout. Every problem is collected, not just the first, and each is one line
saying what to change.
"""

import asyncio
import io
import socket
from collections.abc import Callable
from datetime import date, datetime, timedelta

from pi_platform import plantday, settings
from pi_platform.client.config import PIWebAPIConfig
from pi_platform.client.doctor import find_problems
from pi_platform.errors import PlatformError, user_message

PI_TIMEOUT_S = 5.0


class PreflightFailed(PlatformError):
    """One or more preflight problems; they were printed one per line before this is raised."""


def partition_days(spec: str | None, today: date | None = None) -> list[str]:
    """`None` -> yesterday (the plant's, PI_PARTITION_TIMEZONE); `YYYY-MM-DD` -> that day; `A...B` -> every day
    from A to B inclusive. Days must be partitions: from PI_PARTITIONS_START to the plant's today."""
    today = today or datetime.now(plantday.zone()).date()
    if not spec:
        return [(today - timedelta(days=1)).isoformat()]
    first, _, last = spec.partition("...")
    try:
        start = date.fromisoformat(first.strip())
        end = date.fromisoformat((last or first).strip())
    except ValueError:
        raise PlatformError(f"--partition {spec!r}: use YYYY-MM-DD or YYYY-MM-DD...YYYY-MM-DD") from None
    if end < start:
        raise PlatformError(f"--partition {spec!r}: the range ends before it starts; write the earlier day first")
    earliest = _partitions_start()
    if start < earliest or end > today:
        raise PlatformError(f"--partition {spec!r}: partitions run from {earliest} (PI_PARTITIONS_START) to today "
                            f"({today}); pick days in that range or set PI_PARTITIONS_START earlier")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _partitions_start() -> date:
    text = settings.partitions_start()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PlatformError(f"PI_PARTITIONS_START={text!r} is not a date: use YYYY-MM-DD") from None


def _config_problems() -> list[str]:
    """Every setting that can be malformed, read once, so a typo in an env var is found now."""
    readers: list[Callable[[], object]] = [
        settings.storage_options, settings.stream_mode, settings.daily_lag_minutes,
        settings.recorded_max_lag_minutes, _partitions_start, PIWebAPIConfig.from_settings,
        settings.partition_timezone, settings.healing_interval_seconds, settings.healing_lookback_days,
        settings.stream_shards,
    ]
    problems = []
    for read in readers:
        try:
            read()
        except Exception as exc:  # noqa: BLE001 - only user-fixable errors are reported, bugs propagate
            message = user_message(exc)
            if message is None:
                raise
            problems.append(message)
    return problems


def port_problem(host: str, port: int, what: str, flag: str) -> str | None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return f"{what} port {host}:{port} is in use: stop what listens there or pass {flag} with a free port"
    return None


def pi_problems() -> list[str]:
    """The doctor's checks against the configured PI Web API, each problem prefixed with the URL."""
    config = PIWebAPIConfig.from_settings(timeout_s=PI_TIMEOUT_S, max_retries=0)
    problems = asyncio.run(find_problems(config, io.StringIO()))
    return [f"PI Web API {config.url}: {problem}; check it with `pi-platform doctor`" for problem in problems]


def run_preflight(*, partition: str | None, run_backfill: bool, ports: list[tuple[str, int, str, str]],
                  real_pi: bool) -> list[str]:
    """All checks; prints each problem on its own line and raises `PreflightFailed` if there was any.
    Returns the days to backfill (empty without a backfill)."""
    problems = _config_problems()
    days: list[str] = []
    if run_backfill:
        try:
            days = partition_days(partition)
        except PlatformError as exc:
            problems.append(str(exc))
    problems += [p for p in (port_problem(*port) for port in ports) if p]
    if real_pi and not problems:  # a bad setting would make this check fail for the wrong reason
        problems += pi_problems()
    problems = list(dict.fromkeys(problems))  # a bad PI_PARTITIONS_START is also a bad --partition
    for problem in problems:
        print(f"preflight: {problem}", flush=True)
    if problems:
        raise PreflightFailed(f"{len(problems)} preflight problem(s) above; nothing was started")
    return days
