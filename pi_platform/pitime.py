"""PI time expressions (`*`, `*-1d`, `t`, `y+6h`, `2024-05-01`, ISO 8601) resolved to UTC datetimes.

Users type these everywhere PI tools accept times, so the client, the CLI, Dagster config and the simulator
all resolve them the same way. `t`/`y` and naive ISO strings are interpreted in `tz` (default UTC) —
PI Web API would use the server's zone, which is the time-zone bug peers keep hitting; being explicit
and defaulting to UTC makes a partition's window unambiguous.
"""

import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hr": timedelta(hours=1),
    "d": timedelta(days=1),
    "day": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_OFFSET = re.compile(r"\s*([+-])\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", re.IGNORECASE)


class PITimeError(ValueError):
    """A time expression PI would reject; the message names the expression and the accepted forms."""


def _zone(tz: str | tzinfo | None) -> tzinfo:
    if tz is None:
        return timezone.utc
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _parse_iso(text: str, zone: tzinfo) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise PITimeError(_message(text)) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(timezone.utc)


def _message(expr: str) -> str:
    return (
        f"cannot read time {expr!r}: use '*', 't', 'y', an ISO 8601 time such as 2024-05-01T00:00:00Z, "
        "optionally followed by offsets like -1d, +6h, -30m"
    )


def parse_time(expr: "str | datetime", *, now: datetime | None = None, tz: str | tzinfo | None = None) -> datetime:
    """Resolve a PI time expression to an aware UTC datetime."""
    if isinstance(expr, datetime):
        return (expr if expr.tzinfo else expr.replace(tzinfo=_zone(tz))).astimezone(timezone.utc)
    zone = _zone(tz)
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    text = expr.strip()
    if text == "":
        return now
    # Split the base from trailing offsets. ISO dates contain '-', so only treat a tail as offsets when
    # the whole tail parses as a chain of <sign><number><unit>.
    base_text, offsets = text, timedelta()
    match = re.search(r"((?:\s*[+-]\s*\d+(?:\.\d+)?\s*[a-z]+)+)\s*$", text, re.IGNORECASE)
    if match and all(m.group(3).lower() in _UNITS for m in _OFFSET.finditer(match.group(1))):
        candidate = text[: match.start()].strip()
        if candidate in ("", "*") or candidate.lower() in ("t", "y", "today", "yesterday") or _looks_iso(candidate):
            base_text = candidate
            for m in _OFFSET.finditer(match.group(1)):
                step = _UNITS[m.group(3).lower()] * float(m.group(2))
                offsets += step if m.group(1) == "+" else -step
    low = base_text.lower()
    if low in ("", "*"):
        base = now
    elif low in ("t", "today", "y", "yesterday"):
        local_midnight = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        if low.startswith("y"):
            local_midnight = (local_midnight - timedelta(days=1)).replace(tzinfo=None).replace(tzinfo=zone)
        base = local_midnight.astimezone(timezone.utc)
    else:
        base = _parse_iso(base_text, zone)
    return base + offsets


def _looks_iso(text: str) -> bool:
    return bool(re.match(r"^\d{4}-\d{2}-\d{2}", text))


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch, exact (no float round trip), the unit of every value column."""
    delta = value.astimezone(timezone.utc) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def format_time(value: datetime) -> str:
    """Zulu format with 7 fractional digits at most, which every PI Web API version accepts."""
    value = value.astimezone(timezone.utc)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
