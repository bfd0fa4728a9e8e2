"""PI time expressions resolve the way PI Web API documents them, with UTC as the explicit default zone."""

from datetime import datetime, timezone

import pytest

from pi_platform.pitime import PITimeError, format_time, parse_time

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
    ],
)
def test_expressions(expr, expected):
    assert parse_time(expr, now=NOW) == expected


def test_today_follows_the_given_zone():
    # 10:30 UTC is 12:30 in Amsterdam (CEST): local midnight is 22:00 UTC the day before.
    assert parse_time("t", now=NOW, tz="Europe/Amsterdam") == datetime(2024, 4, 30, 22, tzinfo=timezone.utc)


def test_naive_datetime_is_taken_in_the_given_zone():
    assert parse_time(datetime(2024, 5, 1), tz="UTC") == datetime(2024, 5, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", ["garbage", "*-1parsec", "2024-13-45"])
def test_bad_expressions_name_the_accepted_forms(bad):
    with pytest.raises(PITimeError, match="use '\\*', 't', 'y'"):
        parse_time(bad, now=NOW)


def test_format_is_zulu():
    assert format_time(datetime(2024, 5, 1, tzinfo=timezone.utc)) == "2024-05-01T00:00:00Z"
    assert format_time(datetime(2024, 5, 1, 0, 0, 0, 500, tzinfo=timezone.utc)) == "2024-05-01T00:00:00.000500Z"
