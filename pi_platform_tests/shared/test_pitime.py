"""PI time expressions resolve the way PI Web API documents them, with UTC as the explicit default zone."""

from datetime import datetime, timedelta, timezone

import pytest

from pi_platform.pitime import PITimeError, format_time, parse_interval, parse_time

NOW = datetime(2024, 5, 1, 10, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("*", NOW),
        ("", NOW),
        ("*-1d", datetime(2024, 4, 30, 10, 30, tzinfo=timezone.utc)),
        ("*-1.5h", datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)),
        ("t", datetime(2024, 5, 1, tzinfo=timezone.utc)),
        ("y", datetime(2024, 4, 30, tzinfo=timezone.utc)),
        ("y+6h", datetime(2024, 4, 30, 6, tzinfo=timezone.utc)),
        ("t-30m+1h", datetime(2024, 5, 1, 0, 30, tzinfo=timezone.utc)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=timezone.utc)),
        ("2024-05-01T02:00:00+02:00", datetime(2024, 5, 1, tzinfo=timezone.utc)),
        ("2024-05-01T00:00:00.1234567Z", datetime(2024, 5, 1, 0, 0, 0, 123456, tzinfo=timezone.utc)),
        ("2024-05-01-1h", datetime(2024, 4, 30, 23, tzinfo=timezone.utc)),
        # NOW is a Wednesday: weekday names are the latest such day at midnight, today included.
        ("mon", datetime(2024, 4, 29, tzinfo=timezone.utc)),
        ("Monday+8h", datetime(2024, 4, 29, 8, tzinfo=timezone.utc)),
        ("wed", datetime(2024, 5, 1, tzinfo=timezone.utc)),
        ("sun-1w", datetime(2024, 4, 21, tzinfo=timezone.utc)),
        ("today", datetime(2024, 5, 1, tzinfo=timezone.utc)),
        ("yesterday+90m", datetime(2024, 4, 30, 1, 30, tzinfo=timezone.utc)),
        ("y-1d+8h", datetime(2024, 4, 29, 8, tzinfo=timezone.utc)),
        ("*-1mo", datetime(2024, 4, 1, 10, 30, tzinfo=timezone.utc)),
        ("*-1y", datetime(2023, 5, 1, 10, 30, tzinfo=timezone.utc)),
        ("*+2 hours-30 minutes", datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)),
        ("-1d", datetime(2024, 4, 30, 10, 30, tzinfo=timezone.utc)),
        ("2024-03-31-1mo", datetime(2024, 2, 29, tzinfo=timezone.utc)),
        ("jun", datetime(2024, 6, 1, tzinfo=timezone.utc)),
        ("February+1d", datetime(2024, 2, 2, tzinfo=timezone.utc)),
        ("25", datetime(2024, 5, 25, tzinfo=timezone.utc)),
        ("2020", datetime(2020, 5, 1, tzinfo=timezone.utc)),
        ("08:15", datetime(2024, 5, 1, 8, 15, tzinfo=timezone.utc)),
        ("01-May-24 08:00:00", datetime(2024, 5, 1, 8, tzinfo=timezone.utc)),
        ("2024-05-01 08:00", datetime(2024, 5, 1, 8, tzinfo=timezone.utc)),
        ("t+1500ms", datetime(2024, 5, 1, 0, 0, 1, 500000, tzinfo=timezone.utc)),
    ],
)
def test_expressions(expr, expected):
    assert parse_time(expr, now=NOW) == expected


def test_today_follows_the_given_zone():
    # 10:30 UTC is 12:30 in Amsterdam (CEST): local midnight is 22:00 UTC the day before.
    assert parse_time("t", now=NOW, tz="Europe/Amsterdam") == datetime(2024, 4, 30, 22, tzinfo=timezone.utc)


def test_naive_datetime_is_taken_in_the_given_zone():
    assert parse_time(datetime(2024, 5, 1), tz="UTC") == datetime(2024, 5, 1, tzinfo=timezone.utc)


def test_calendar_offsets_follow_the_local_wall_clock():
    # Berlin springs forward on 2024-03-31: that day has 23 hours, so "t-1d" is 23 h before "t", "*-24h" is not.
    now = datetime(2024, 3, 31, 12, tzinfo=timezone.utc)
    assert parse_time("t", now=now, tz="Europe/Berlin") == datetime(2024, 3, 30, 23, tzinfo=timezone.utc)
    assert parse_time("t-1d", now=now, tz="Europe/Berlin") == datetime(2024, 3, 29, 23, tzinfo=timezone.utc)
    assert parse_time("t+1d", now=now, tz="Europe/Berlin") == datetime(2024, 3, 31, 22, tzinfo=timezone.utc)
    assert parse_time("t+24h", now=now, tz="Europe/Berlin") == datetime(2024, 3, 31, 23, tzinfo=timezone.utc)


def test_intervals():
    assert parse_interval("1h") == timedelta(hours=1)
    assert parse_interval("1.5d") == timedelta(hours=36)
    assert parse_interval("30 seconds") == timedelta(seconds=30)
    with pytest.raises(PITimeError, match="interval"):
        parse_interval("1mo")


@pytest.mark.parametrize("bad", ["garbage", "*-1parsec", "2024-13-45", "*-1.5mo", "32", "1969", "t+", "mon tue", "25:00"])
def test_bad_expressions_name_the_accepted_forms(bad):
    with pytest.raises(PITimeError, match="use '\\*', 't', 'y'"):
        parse_time(bad, now=NOW)


def test_format_is_zulu():
    assert format_time(datetime(2024, 5, 1, tzinfo=timezone.utc)) == "2024-05-01T00:00:00Z"
    # As PI Web API prints them: no trailing zeros in the fraction (.NET FFFFFFF).
    assert format_time(datetime(2024, 5, 1, 0, 0, 0, 500, tzinfo=timezone.utc)) == "2024-05-01T00:00:00.0005Z"
    assert format_time(datetime(2024, 5, 1, 0, 0, 0, 120000, tzinfo=timezone.utc)) == "2024-05-01T00:00:00.12Z"
