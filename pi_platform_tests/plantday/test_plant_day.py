"""The plant's day: with PI_PARTITION_TIMEZONE=Europe/Berlin every daily partition is the local day, 23 hours on
the spring DST change and 25 on the autumn one, while every timestamp stays UTC.

The zone is a code-location setting (partitions and schedules are built at import), so the real code location
runs in one child process with the variable set (`berlin_child.py`): it materialises the DST partitions against
a real simulator and evaluates the real schedules. Rows are compared with the plant's ground truth for exactly
[local midnight, next local midnight) in UTC.
"""

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.compute as pc
import pytest

from pi_platform import plantday
from pi_platform.launcher.preflight import PreflightFailed, run_preflight
from pi_platform.simulator.config import SimulatorConfig
from pi_platform.simulator.server import SimulatorServer
from pi_platform.storage import DeltaStore
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import kpi_truth, truth

BERLIN = ZoneInfo("Europe/Berlin")
SPRING, AUTUMN = date(2024, 3, 31), date(2024, 10, 27)
NOW = datetime(2024, 11, 4, 12, 0, tzinfo=timezone.utc)  # simulator clock: both DST days are complete
CHILD_TIMEOUT_S = 240  # a loaded 2-core box: generous, never a timing assertion


def zone_env(tmp_path: Path, simulator_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PI_PARTITION_TIMEZONE": "Europe/Berlin", "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "PI_PLATFORM_HOME": str(tmp_path),
           "PI_DELTA_ROOT": str(tmp_path / "lake"), "PI_WEBAPI_MAX_REQUESTS_PER_SECOND": "1000"}
    if simulator_url:
        env["PI_WEBAPI_URL"] = simulator_url
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return env


CHILD = Path(__file__).with_name("berlin_child.py")


@pytest.fixture(scope="module")
def berlin(tmp_path_factory):
    """Both DST days materialised once in Berlin partitions (every daily table of the spring day, the values of
    the autumn day) and the schedules evaluated, by the real code location in one child process."""
    simulator = SimulatorServer(SimulatorConfig(n_tags=12, now=NOW)).start()
    try:
        env = zone_env(tmp_path_factory.mktemp("berlin"), simulator.base_url)
        env.update(PI_TODAY_REFRESH_CRON="*/15 * * * *", PI_DAILY_LAG_MINUTES="60")
        done = subprocess.run(
            [sys.executable, str(CHILD), f"{SPRING}:af_elements,recorded_values,event_frames,alarms,alarm_kpis",
             f"{AUTUMN}:recorded_values"],
            env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield simulator.plant, DeltaStore(env["PI_DELTA_ROOT"]), json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        simulator.stop()


def stored_day(store: DeltaStore, day: date):
    rows = store.read_range("recorded_values", "event_date", day, day + timedelta(days=1))
    return rows, sort_values(rows.select(VALUE_SCHEMA.names))


@pytest.mark.parametrize("day, hours", [(SPRING, 23), (AUTUMN, 25)], ids=["spring-23h", "autumn-25h"])
def test_a_dst_partition_holds_exactly_the_local_day_in_utc(berlin, day, hours):
    plant, store, _ = berlin
    start, end = plantday.local_midnight(day, BERLIN), plantday.local_midnight(day + timedelta(days=1), BERLIN)
    assert end - start == timedelta(hours=hours)
    expected = truth.recorded(plant, start, end)
    rows, got = stored_day(store, day)
    assert got.num_rows == expected.num_rows > 0
    assert got.equals(expected)
    # timestamps stay UTC; the partition value is the local day of every one of them
    assert rows.schema.field("timestamp").type.tz == "UTC"
    assert pc.min(rows["timestamp"]).as_py() >= start and pc.max(rows["timestamp"]).as_py() < end
    assert set(rows["event_date"].to_pylist()) == {day}
    # the table holds the two days and nothing else: the hour before local midnight went to no other partition
    other = AUTUMN if day == SPRING else SPRING
    assert store.read("recorded_values").num_rows == rows.num_rows + stored_day(store, other)[0].num_rows


def test_alarm_kpis_of_the_23_hour_day_match_ground_truth(berlin):
    plant, store, _ = berlin

    rows = [r for r in store.read("alarm_kpis").to_pylist() if r["event_date"] == SPRING]
    assert len(rows) == 1
    want = kpi_truth.kpis(kpi_truth.alarms(plant, SPRING, BERLIN), SPRING, BERLIN)
    got = kpi_truth.stored(rows[0])
    assert want["alarm_count"] > 0
    for field, value in want.items():
        assert got[field] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), field
    assert got["avg_per_10min"] == pytest.approx(got["alarm_count"] / 138)  # 23 h = 138 ten-minute windows
    # each alarm's partition is the local day it was raised in, its times UTC
    alarms = store.read("alarms")
    assert alarms.num_rows > 0
    assert alarms["start_date"].to_pylist() == plantday.local_days(alarms["start_time"], BERLIN).to_pylist()


def test_schedules_tick_after_local_midnight_and_ask_for_the_local_day(berlin):
    probe = berlin[2]
    assert probe["partitions_timezone"] == "Europe/Berlin"

    daily = probe["schedules"]["previous_day_schedule"]
    assert daily["timezone"] == "Europe/Berlin"
    utc = lambda text: datetime.fromisoformat(text)  # noqa: E731
    # 01:00 local every day: 00:00Z in winter, 23:00Z the day before in summer; each asks for the local yesterday
    assert [(utc(t), key) for t, key in daily["ticks"]] == [
        (datetime(2024, 3, 31, 0, tzinfo=timezone.utc), "2024-03-30"),
        (datetime(2024, 3, 31, 23, tzinfo=timezone.utc), "2024-03-31"),  # the 23-hour day, 23 h after the last tick
        (datetime(2024, 4, 1, 23, tzinfo=timezone.utc), "2024-04-01"),
        (datetime(2024, 10, 26, 23, tzinfo=timezone.utc), "2024-10-26"),
        (datetime(2024, 10, 28, 0, tzinfo=timezone.utc), "2024-10-27"),  # the 25-hour day, 25 h after the last tick
        (datetime(2024, 10, 29, 0, tzinfo=timezone.utc), "2024-10-28"),
    ]
    # every refresh tick asks for the local day it falls in, whatever the UTC date
    today = probe["schedules"]["today_refresh_schedule"]
    assert today["timezone"] == "Europe/Berlin"
    for t, key in today["ticks"]:
        assert key == utc(t).astimezone(BERLIN).date().isoformat()
    assert any(utc(t).date().isoformat() != key for t, key in today["ticks"])  # ticks before 00:00Z, after local midnight


def test_an_unknown_zone_is_one_line_before_anything_starts(monkeypatch, capsys):
    monkeypatch.setenv("PI_PARTITION_TIMEZONE", "Europe/Berln")
    with pytest.raises(PreflightFailed):
        run_preflight(partition=None, run_backfill=True, ports=[], real_pi=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if "PI_PARTITION_TIMEZONE" in line]
    assert len(lines) == 1 and "'Europe/Berln'" in lines[0] and "Europe/Berlin" in lines[0]
