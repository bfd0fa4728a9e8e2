"""alarm_kpis equals an independent computation on the simulator's ground truth (`kpi_truth`), for a day
materialised minutes after midnight while alarms are still open, for the same day after they closed (the
late changes reach it through the `alarm_kpis_late_changes` sensor), and for a quiet day."""

from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pytest

from pi_platform.defs.definitions import defs
from pi_platform.defs.events.assets import LATE_TAG
from pi_platform_tests.batch import kpi_truth
from pi_platform_tests.batch.conftest import DAY, NOW, Runner

EVENTS = ("af_elements", "event_frames", "alarms", "alarm_kpis")
NEXT = DAY + timedelta(days=1)
QUIET = date(2024, 3, 13)  # the simulator raises no alarm on the 13th of a month


def at(day: date, hours: float = 0) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(hours=hours)


def stored_kpis(runner: Runner, day: date) -> dict:
    rows = [r for r in runner.table("alarm_kpis").to_pylist() if r["event_date"] == day]
    assert len(rows) == 1
    return kpi_truth.stored(rows[0])


def assert_equal(got: dict, want: dict, skip: tuple[str, ...] = ()) -> None:
    for field, value in want.items():
        if field in skip:
            continue
        expected = pytest.approx(value, rel=1e-9) if isinstance(value, float) else value
        assert got[field] == expected, field


def follow_late_changes(runner: Runner, cursor: str | None) -> tuple[list[str], str | None]:
    """One tick of the sensor, then the runs it asks for, as the daemon would launch them."""
    sensor = defs.resolve_sensor_def("alarm_kpis_late_changes")
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=runner.instance, cursor=cursor, definitions=defs))
    for request in tick.run_requests:
        result = dg.materialize(
            [defs.get_assets_def("alarm_kpis")], resources=runner.resources, instance=runner.instance,
            partition_key=request.partition_key, tags=request.tags,
        )
        assert result.success and request.tags[LATE_TAG]
    return [r.partition_key for r in tick.run_requests], tick.cursor


def test_open_alarms_just_after_midnight_then_closed(make_simulator, tmp_path, instance):
    simulator = make_simulator(n_tags=20, now=at(NEXT, 5 / 60), edge_tags=False)  # 00:05, as the schedule runs
    plant = simulator.plant
    runner = Runner(simulator, tmp_path / "lake", instance)
    assert runner.materialize(EVENTS).success

    alarms = {r["web_id"]: r for r in runner.table("alarms").to_pylist()}
    now = plant.clock.now_us()
    open_now = {plant.events.web_id(f) for f in plant.events.frames(at(DAY), at(NEXT)) if f.template.can_be_acknowledged and f.is_open(now)}
    assert open_now and open_now <= alarms.keys()  # nothing open is dropped
    assert {w for w, a in alarms.items() if a["is_active"]} == open_now
    assert all(alarms[w]["end_time"] is None for w in open_now)

    truth = kpi_truth.alarms(plant, DAY)
    want = kpi_truth.kpis(truth, DAY)
    assert want["standing_count"] > 0 and want["chattering_count"] > 0 and want["flood_windows"] > 0
    # Everything but chattering is final at once; chattering needs the next day's first minute in view.
    assert_equal(stored_kpis(runner, DAY), want, skip=("chattering_sources", "chattering_count"))

    # Today's refresh reads the next day: its alarms complete the burst that crossed midnight.
    assert runner.materialize(EVENTS, day=NEXT).success
    refreshed, cursor = follow_late_changes(runner, None)
    assert refreshed == [DAY.isoformat()]
    assert_equal(stored_kpis(runner, DAY), want)

    # Hours later the open alarms have closed and more were acknowledged: a refresh of today re-reads them,
    # and the sensor recomputes the day they belong to.
    plant.clock.set(frozen=at(NEXT, 12))
    result = runner.materialize(EVENTS, day=NEXT)
    assert result.success
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "kpi_days_to_refresh")
    assert DAY.isoformat() in check.metadata["late_kpi_days"].value  # the check shows the days to refresh
    refreshed, cursor = follow_late_changes(runner, cursor)
    assert DAY.isoformat() in refreshed
    after = kpi_truth.kpis(kpi_truth.alarms(plant, DAY), DAY)
    assert after != want  # acknowledgements and ends did change the day
    assert_equal(stored_kpis(runner, DAY), after)
    now = plant.clock.now_us()
    still_open = {plant.events.web_id(f) for f in plant.events.frames(at(DAY), at(NEXT)) if f.is_open(now)}
    alarms = {r["web_id"]: r for r in runner.table("alarms").to_pylist()}
    assert open_now - still_open and all(alarms[w]["is_active"] == (w in still_open) for w in open_now)
    assert follow_late_changes(runner, cursor)[0] == []  # nothing is requested twice


def test_day_after_its_alarms_closed(make_runner, plain_simulator):
    runner = make_runner(plain_simulator, "lake")
    assert runner.materialize(EVENTS, days=2).success  # the next day in the same run: bursts across midnight in view
    want = kpi_truth.kpis(kpi_truth.alarms(plain_simulator.plant, DAY), DAY)
    assert want["alarm_count"] > 0 and want["acknowledged_count"] > 0
    assert_equal(stored_kpis(runner, DAY), want)


def test_quiet_day(make_simulator, tmp_path, instance):
    simulator = make_simulator(n_tags=20, now=at(QUIET, 48), edge_tags=False)
    runner = Runner(simulator, tmp_path / "lake", instance)
    assert runner.materialize(EVENTS, day=QUIET).success
    want = kpi_truth.kpis(kpi_truth.alarms(simulator.plant, QUIET), QUIET)
    assert want["alarm_count"] == 0
    assert_equal(stored_kpis(runner, QUIET), want)
