"""alarm_kpis equals an independent computation on the simulator's ground truth (`kpi_truth`), for a day
materialised minutes after midnight while alarms are still open, for the same day after they closed (the
late changes reach it through the next alarm_kpis run), and for a quiet day."""

from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pytest

from pi_platform_tests.batch import kpi_truth
from pi_platform_tests.batch.conftest import DAY, Runner

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


def check_metadata(result: dg.ExecuteInProcessResult, check: str, key: str) -> list[str]:
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == check)
    assert evaluation.passed
    return evaluation.metadata[key].value


def refreshed_days(result: dg.ExecuteInProcessResult) -> list[str]:
    """The days outside the run that alarm_kpis recomputed, as its check shows them; each also got a
    materialisation of its own partition."""
    days = check_metadata(result, "late_changes_followed", "recomputed_days")
    partitions = {m.partition for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == "alarm_kpis"}
    assert set(days) <= partitions
    return days


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
    result = runner.materialize(EVENTS, day=NEXT)
    assert result.success and refreshed_days(result) == [DAY.isoformat()]
    assert_equal(stored_kpis(runner, DAY), want)

    # Hours later the open alarms have closed and more were acknowledged: a refresh of today re-reads them,
    # and recomputes the day they belong to.
    plant.clock.set(frozen=at(NEXT, 12))
    result = runner.materialize(EVENTS, day=NEXT)
    assert result.success
    assert DAY.isoformat() in check_metadata(result, "kpi_days_to_refresh", "late_kpi_days")
    assert refreshed_days(result) == [DAY.isoformat()]
    after = kpi_truth.kpis(kpi_truth.alarms(plant, DAY), DAY)
    assert after != want  # acknowledgements and ends did change the day
    assert_equal(stored_kpis(runner, DAY), after)
    now = plant.clock.now_us()
    still_open = {plant.events.web_id(f) for f in plant.events.frames(at(DAY), at(NEXT)) if f.is_open(now)}
    alarms = {r["web_id"]: r for r in runner.table("alarms").to_pylist()}
    assert open_now - still_open and all(alarms[w]["is_active"] == (w in still_open) for w in open_now)
    assert refreshed_days(runner.materialize(EVENTS, day=NEXT)) == []  # nothing changed: nothing recomputed


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
