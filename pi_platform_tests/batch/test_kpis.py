"""Alarm KPIs on hand-built days whose answers are known: a flood, a chatterer, a standing alarm, a burst
across midnight; and the days a late change to an alarm makes stale."""

import json
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa

from pi_platform.batch.alarm_kpis import daily_kpis, late_days

DAY = date(2024, 3, 3)
T0 = datetime(2024, 3, 3, tzinfo=timezone.utc)
TS = pa.timestamp("us", tz="UTC")


def alarms(rows: list[tuple]) -> pa.Table:
    source, start, end, acked, tta = zip(*rows)
    return pa.table(
        {
            "source": pa.array(source),
            "start_time": pa.array(start, TS),
            "end_time": pa.array(end, TS),
            "is_acknowledged": pa.array(acked),
            "time_to_ack_s": pa.array(tta, pa.float64()),
        }
    )


def test_kpis_of_a_known_day():
    rows = []
    # flood: 12 alarms from 12 sources inside 10:00-10:10
    rows += [(f"flood{i}", T0 + timedelta(hours=10, seconds=30 * i), T0 + timedelta(hours=11), True, 60.0) for i in range(12)]
    # chatterer: 3 activations within 40 s
    rows += [("chatter", T0 + timedelta(hours=2, seconds=20 * i), T0 + timedelta(hours=2, seconds=20 * i + 5), False, None) for i in range(3)]
    # slow but not chattering: 3 activations 2 minutes apart
    rows += [("slow", T0 + timedelta(hours=5, minutes=2 * i), T0 + timedelta(hours=5, minutes=2 * i + 1), True, 600.0) for i in range(3)]
    # standing: raised two days before, still open; and one raised yesterday morning, cleared today
    rows += [("stuck", T0 - timedelta(days=2), None, False, None), ("cleared", T0 - timedelta(hours=20), T0 + timedelta(hours=1), False, None)]
    kpi = daily_kpis(alarms(rows), [DAY]).to_pylist()[0]
    assert kpi["alarm_count"] == 18
    assert kpi["peak_per_10min"] == 12
    assert kpi["flood_windows"] == 1 and kpi["flood_share"] == 1 / 144
    assert abs(kpi["avg_per_10min"] - 18 / 144) < 1e-12
    assert json.loads(kpi["chattering_sources"]) == ["chatter"] and kpi["chattering_count"] == 1
    assert kpi["standing_count"] == 1
    assert kpi["acknowledged_count"] == 15 and kpi["median_time_to_ack_s"] == 60.0
    top = json.loads(kpi["top_bad_actors"])
    assert top[:3] == [{"source": "chatter", "alarms": 3}, {"source": "slow", "alarms": 3}, {"source": "flood0", "alarms": 1}]
    assert len(top) == 10 and abs(kpi["top_bad_actor_share"] - 14 / 18) < 1e-12


def test_quiet_day():
    kpi = daily_kpis(alarms([("a", T0 - timedelta(days=3), T0 - timedelta(days=2), True, 5.0)]), [DAY]).to_pylist()[0]
    assert kpi["alarm_count"] == 0 and kpi["peak_per_10min"] == 0 and kpi["flood_share"] == 0
    assert kpi["median_time_to_ack_s"] is None and kpi["top_bad_actor_share"] is None and kpi["standing_count"] == 0


def test_a_burst_across_midnight_counts_once_on_the_day_it_starts():
    midnight = T0 + timedelta(days=1)
    rows = [("burst", midnight + timedelta(seconds=s), midnight + timedelta(seconds=s + 2), False, None) for s in (-40, -20, 0, 20, 40)]
    rows += [("late", midnight + timedelta(seconds=s), midnight + timedelta(seconds=s + 2), False, None) for s in (-10, 5, 30)]
    rows += [("open", T0 - timedelta(hours=30), None, True, None)]  # open: its null end must not drop it
    first, second = daily_kpis(alarms(rows), [DAY, DAY + timedelta(days=1)]).to_pylist()
    assert json.loads(first["chattering_sources"]) == ["burst", "late"]  # "late" needs the next day's alarms
    assert second["chattering_count"] == 0 and second["alarm_count"] == 5
    assert first["standing_count"] == second["standing_count"] == 1
    assert first["acknowledged_count"] == 0  # the open alarm was raised the day before


def test_late_days_follow_ends_acknowledgements_and_alarms_near_midnight():
    def table(rows: list[tuple]) -> pa.Table:
        web_id, *rest = zip(*rows)
        return alarms([tuple(r[1:]) for r in rows]).append_column("web_id", pa.array(web_id))

    start = T0 + timedelta(hours=8)
    before = table([("a", "s", start, None, False, None), ("b", "s", start, start + timedelta(minutes=5), True, 30.0)])
    run = [DAY + timedelta(days=3)]
    same = table([("b", "s", start, start + timedelta(minutes=5), True, 30.0)])
    assert late_days(before, same, run) == []
    closed = table([("a", "s", start, T0 + timedelta(days=1, hours=2), True, 60.0)])
    # it was open: every day up to the run's may have counted it standing
    assert late_days(before, closed, run) == [DAY + timedelta(days=i) for i in range(3)]
    early = table([("c", "s", T0 + timedelta(days=3, seconds=20), T0 + timedelta(days=3, minutes=1), False, None)])
    assert late_days(before, early, run) == [DAY + timedelta(days=2)]  # it can complete the previous day's burst
