"""PI time expressions (`*`, `*-1d`, `t`, `y+6h`, `mon+8h`, `*-1mo`, `2024-05-01`, ISO 8601) resolved to UTC datetimes.

Users type these everywhere PI tools accept times, so the client, the CLI, Dagster config and the simulator
all resolve them the same way. Relative words (`t`, `y`, weekday and month names, a day of month, a year)
and naive ISO strings are interpreted in `tz` (default UTC) — PI Web API would use the server's zone, which
is the time-zone bug peers keep hitting; being explicit and defaulting to UTC makes a partition's window
unambiguous.

The grammar is AF's (protocol reference §2.4): an optional base — `*` (now), `t`/`today`, `y`/`yesterday`,
a weekday name (`mon`, `monday`: the most recent one, today included), a month name (`jun`: that month of
this year, today's day of month), a number below 32 (that day of this month), a four-digit year ≥ 1970 (today's
month and day in that year), a time of day (`08:00`, today), an ISO 8601 date/time or PI's `01-May-24 08:00:00`
— then any chain of offsets `+/-<number><unit>`. Units: ms, s, m, h (fixed lengths, added in UTC) and
d, w, mo, y (calendar steps on the local wall clock, so `t-1d` is yesterday's midnight across a DST change),
each also as its full word (`-2 hours`, `+1month`). Relative words resolve to local midnight.
"""

import calendar
import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

_FIXED = {
    "ms": timedelta(milliseconds=1),
    "millisecond": timedelta(milliseconds=1),
    "milliseconds": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "secs": timedelta(seconds=1),
    "second": timedelta(seconds=1),
    "seconds": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "mins": timedelta(minutes=1),
    "minute": timedelta(minutes=1),
    "minutes": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hr": timedelta(hours=1),
    "hrs": timedelta(hours=1),
    "hour": timedelta(hours=1),
    "hours": timedelta(hours=1),
}
# Calendar units: (days, months) per unit, applied to the local wall clock.
_CALENDAR = {
    "d": (1, 0),
    "day": (1, 0),
    "days": (1, 0),
    "w": (7, 0),
    "wk": (7, 0),
    "week": (7, 0),
    "weeks": (7, 0),
    "mo": (0, 1),
    "mon": (0, 1),
    "month": (0, 1),
    "months": (0, 1),
    "y": (0, 12),
    "yr": (0, 12),
    "year": (0, 12),
    "years": (0, 12),
}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = tuple(calendar.month_name[i].lower() for i in range(1, 13))
_OFFSET = re.compile(r"\s*([+-])\s*(\d+(?:\.\d+)?)\s*([a-z]+)", re.IGNORECASE)
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2}(?![a-z\d]))?", re.IGNORECASE
)
_PI_DATE = re.compile(
    r"(\d{1,2})-([a-z]{3})-(\d{2}|\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?", re.IGNORECASE
)
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?(?![\d-])")
_WORD = re.compile(r"[a-z]+", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?![\d:.-])")


class PITimeError(ValueError):
    """A time expression PI would reject; the message names the expression and the accepted forms."""


def _zone(tz: str | tzinfo | None) -> tzinfo:
    if tz is None:
        return timezone.utc
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _message(expr: str) -> str:
    return (
        f"cannot read time {expr!r}: use '*', 't', 'y', a weekday or month name, an ISO 8601 time such as "
        "2024-05-01T00:00:00Z, optionally followed by offsets like -1d, +6h, -30m, -1mo, -1y"
    )


def _local(naive: datetime, zone: tzinfo) -> datetime:
    """A local wall-clock time as UTC (the earlier instant when the clock repeats an hour)."""
    return naive.replace(tzinfo=zone).astimezone(timezone.utc)


def _add_months(naive: datetime, months: int) -> datetime:
    """Calendar months on a wall-clock time, clamped to the month's last day (31 Mar - 1mo = 29 Feb)."""
    index = naive.year * 12 + naive.month - 1 + months
    year, month = divmod(index, 12)
    day = min(naive.day, calendar.monthrange(year, month + 1)[1])
    return naive.replace(year=year, month=month + 1, day=day)


def _base(text: str, now: datetime, zone: tzinfo) -> tuple[datetime, str] | None:
    """(base instant in UTC, the rest of the text) or None when the text does not start with a base."""
    local_now = now.astimezone(zone).replace(tzinfo=None)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    if text.startswith("*"):
        return now, text[1:]
    if match := _ISO.match(text):
        try:
            parsed = datetime.fromisoformat(match.group(0).replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        instant = parsed.astimezone(timezone.utc) if parsed.tzinfo else _local(parsed, zone)
        return instant, text[match.end() :]
    if match := _PI_DATE.match(text):
        day, month_name, year_text, hh, mm, ss, frac = match.groups()
        month = next((i + 1 for i, m in enumerate(_MONTHS) if m.startswith(month_name.lower())), None)
        year = int(year_text) + (2000 if len(year_text) == 2 else 0)
        if month is None:
            return None
        try:
            naive = datetime(year, month, int(day), int(hh or 0), int(mm or 0), int(ss or 0))
        except ValueError:
            return None
        naive += timedelta(seconds=float(frac or 0))
        return _local(naive, zone), text[match.end() :]
    if match := _TIME_OF_DAY.match(text):
        hh, mm, ss, frac = match.groups()
        if int(hh) > 23 or int(mm) > 59 or int(ss or 0) > 59:
            return None
        naive = midnight.replace(hour=int(hh), minute=int(mm), second=int(ss or 0))
        return _local(naive + timedelta(seconds=float(frac or 0)), zone), text[match.end() :]
    if match := _NUMBER.match(text):
        number = int(match.group(0))
        try:
            if len(match.group(0)) <= 2 and 1 <= number < 32:
                naive = midnight.replace(day=number)
            elif len(match.group(0)) == 4 and number >= 1970:
                last_day = calendar.monthrange(number, midnight.month)[1]
                naive = midnight.replace(year=number, day=min(midnight.day, last_day))
            else:
                return None
        except ValueError:  # 31 in a 30-day month
            return None
        return _local(naive, zone), text[match.end() :]
    if match := _WORD.match(text):
        word, rest = match.group(0).lower(), text[match.end() :]
        if word in ("t", "today"):
            return _local(midnight, zone), rest
        if word in ("y", "yesterday"):
            return _local(midnight - timedelta(days=1), zone), rest
        weekday = next((i for i, name in enumerate(_WEEKDAYS) if len(word) >= 3 and name.startswith(word)), None)
        if weekday is not None:
            back = (midnight.weekday() - weekday) % 7
            return _local(midnight - timedelta(days=back), zone), rest
        month = next((i + 1 for i, name in enumerate(_MONTHS) if len(word) >= 3 and name.startswith(word)), None)
        if month is not None:
            day = min(midnight.day, calendar.monthrange(midnight.year, month)[1])
            return _local(midnight.replace(month=month, day=day), zone), rest
    return None


def _apply_offsets(base: datetime, text: str, zone: tzinfo) -> datetime | None:
    """Apply `+/-<n><unit>` steps in order; None if the text is not entirely such steps."""
    position, value = 0, base
    for match in _OFFSET.finditer(text):
        if match.start() != position:
            return None
        position = match.end()
        sign = 1 if match.group(1) == "+" else -1
        amount, unit = match.group(2), match.group(3).lower()
        if unit in _FIXED:
            value += sign * float(amount) * _FIXED[unit]
        elif unit in _CALENDAR:
            days, months = _CALENDAR[unit]
            if months and "." in amount:
                return None  # a fraction of a month has no calendar meaning
            wall = value.astimezone(zone).replace(tzinfo=None)
            if months:
                wall = _add_months(wall, sign * int(amount) * months)
            else:
                wall += sign * float(amount) * timedelta(days)
            value = _local(wall, zone)
        else:
            return None
    return value if text[position:].strip() == "" else None


def parse_time(expr: "str | datetime", *, now: datetime | None = None, tz: str | tzinfo | None = None) -> datetime:
    """Resolve a PI time expression to an aware UTC datetime."""
    if isinstance(expr, datetime):
        return (expr if expr.tzinfo else expr.replace(tzinfo=_zone(tz))).astimezone(timezone.utc)
    zone = _zone(tz)
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    text = expr.strip()
    if text == "":
        return now
    found = (now, text) if text[0] in "+-" else _base(text, now, zone)
    resolved = None if found is None else _apply_offsets(found[0], found[1], zone)
    if resolved is None:
        raise PITimeError(_message(expr))
    return resolved


def parse_interval(text: str) -> timedelta:
    """An AFTimeSpan of fixed length (`1h`, `30s`, `1.5d`, `2 hours`), as interval-type parameters take it."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", text, re.IGNORECASE)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit not in _FIXED and (unit not in _CALENDAR or _CALENDAR[unit][1])):
        raise PITimeError(f"cannot read interval {text!r}: use a number and a unit such as 30s, 10m, 1h, 1d, 1w")
    step = _FIXED[unit] if unit in _FIXED else timedelta(days=_CALENDAR[unit][0])
    return float(match.group(1)) * step


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch, exact (no float round trip), the unit of every value column."""
    delta = value.astimezone(timezone.utc) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def format_time(value: datetime) -> str:
    """As PI Web API prints times (.NET `yyyy-MM-ddTHH:mm:ss.FFFFFFFZ`): UTC, `Z`, the fraction without
    trailing zeros and no fraction at all on whole seconds."""
    value = value.astimezone(timezone.utc)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0") + "Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
