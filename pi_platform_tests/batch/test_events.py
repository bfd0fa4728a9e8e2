"""event_frames, alarms and alarm_kpis against the simulator's event ground truth; open frames are updated
in place as they close (upsert by WebID), never duplicated."""

import json
from datetime import datetime, timezone

import pyarrow as pa

from pi_platform.batch.alarm_kpis import daily_kpis
from pi_platform.batch.event_frames import alarms_table, frames_table
from pi_platform.storage import schemas, split_valid
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY, NOW, Runner, day_bounds

EVENTS = ("event_frames", "alarms", "alarm_kpis")
FRAME_FIELDS = ("name", "template_name", "start_time", "end_time", "is_open", "severity", "can_be_acknowledged",
                "is_acknowledged", "primary_element_web_id")


def by_web_id(table: pa.Table) -> dict[str, dict]:
    rows = table.to_pylist()
    assert len(rows) == len({r["web_id"] for r in rows}), "duplicated frame"
    return {r["web_id"]: r for r in rows}


def test_events_of_a_day_equal_ground_truth(runner, small_simulator):
    result = runner.materialize(("af_elements",) + EVENTS)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    start, end = day_bounds(DAY)
    expected = truth.frames(small_simulator.plant, start, end)
    stored = by_web_id(runner.table("event_frames"))
    assert stored.keys() == expected.keys() and len(expected) > 10
    for web_id, want in expected.items():
        assert {k: stored[web_id][k] for k in FRAME_FIELDS} == {k: want[k] for k in FRAME_FIELDS}, web_id

    alarms = by_web_id(runner.table("alarms"))
    assert alarms.keys() == {w for w, f in expected.items() if f["can_be_acknowledged"]}
    paths = {e.web_id: e.path for e in small_simulator.plant.elements}
    for web_id, alarm in alarms.items():
        assert alarm["annotation_count"] == expected[web_id]["annotation_count"]
        assert alarm["element_path"] == paths[alarm["element_web_id"]]
        assert alarm["source"] == f"{alarm['template_name']} @ {alarm['element_path']}"
        assert alarm["is_active"] == expected[web_id]["is_open"]
    assert any(a["annotation_count"] for a in alarms.values())
    acknowledged = [a for a in alarms.values() if a["is_acknowledged"]]
    assert all(a["time_to_ack_s"] > 0 for a in acknowledged if not a["field_issues"])
    drifted = [a for a in acknowledged if a["field_issues"]]  # the simulator's clock drift: ack before start
    assert drifted and all(a["time_to_ack_s"] is None and "before start_time" in a["field_issues"] for a in drifted)
    assert all(a["acknowledged_date"] is None for a in alarms.values() if not a["is_acknowledged"])
    assert_no_placeholder_dates(runner)

    kpis = runner.table("alarm_kpis").to_pylist()
    assert [k["event_date"] for k in kpis] == [DAY]
    recomputed = daily_kpis(runner.table("alarms"), [DAY]).to_pylist()
    assert kpis == recomputed
    raised_today = [f for f in expected.values() if f["can_be_acknowledged"] and start <= f["start_time"] < end]
    assert kpis[0]["alarm_count"] == len(raised_today)
    assert kpis[0]["peak_per_10min"] >= 8  # the simulated flood: 15-30 alarms inside ten minutes


def assert_no_placeholder_dates(runner: Runner) -> None:
    """PI's 1970-01-01 and 9999-12-31 placeholders survive in no time column, nor in annotation dates."""
    for name in ("event_frames", "alarms"):
        table = runner.table(name)
        for column in ("start_time", "end_time", "acknowledged_date"):
            years = {t.year for t in table[column].to_pylist() if t is not None}
            assert not years & {1970, 9999}, (name, column)
    notes = [n for text in runner.table("alarms")["annotations"].to_pylist() if text for n in json.loads(text)]
    assert notes and not any(n["creation_date"][:4] in ("1970", "9999") for n in notes)


def test_placeholders_become_nulls_and_a_bad_field_does_not_quarantine_its_alarm():
    base = {"Name": "HighAlarm.P1", "TemplateName": "HighAlarm", "CategoryNames": ["Alarm"], "Severity": "Major",
            "CanBeAcknowledged": True, "RefElementWebIds": ["E1"]}
    items = [
        {**base, "WebId": "F1", "StartTime": "2024-03-03T10:00:00Z", "EndTime": "9999-12-31T23:59:59Z",
         "IsAcknowledged": False, "AcknowledgedDate": "1970-01-01T00:00:00Z"},
        {**base, "WebId": "F2", "StartTime": "2024-03-03T10:00:00Z", "EndTime": "2024-03-03T10:05:00Z",
         "IsAcknowledged": True, "AcknowledgedDate": "2024-03-03T09:59:50Z"},
        {**base, "WebId": "F3", "StartTime": "1970-01-01T00:00:00Z", "EndTime": "2024-03-03T10:05:00Z"},
    ]
    frames = frames_table(items)
    rows = {r["web_id"]: r for r in frames.to_pylist()}
    assert rows["F1"]["end_time"] is None and rows["F1"]["is_open"] and rows["F1"]["acknowledged_date"] is None
    assert rows["F3"]["start_time"] is None
    assert split_valid(frames, schemas.EVENT_FRAMES, time_column="start_time").rejects.num_rows == 1  # no start: refused

    notes = {"F1": [{"Name": "n", "Value": "v", "Creator": "c", "CreationDate": "1970-01-01T00:00:00Z"}]}
    paths = pa.table({"web_id": ["E1"], "path": ["\\\\AF\\DB\\P1"]})
    alarms = alarms_table(frames.filter(pa.array([True, True, False])), notes, paths)
    split = split_valid(alarms, schemas.ALARMS, time_column="start_time")
    assert split.rejects.num_rows == 0
    rows = {r["web_id"]: r for r in split.valid.to_pylist()}
    assert rows["F1"]["is_active"] and rows["F1"]["time_to_ack_s"] is None and rows["F1"]["field_issues"] is None
    assert json.loads(rows["F1"]["annotations"])[0]["creation_date"] is None
    assert rows["F2"]["time_to_ack_s"] is None and rows["F2"]["is_acknowledged"]
    assert rows["F2"]["field_issues"] == "time_to_ack_s: acknowledged_date 10 s before start_time"


def test_open_frames_are_updated_when_they_close(make_simulator, tmp_path, instance):
    midday = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=timezone.utc)
    simulator = make_simulator(n_tags=20, now=midday, edge_tags=False)
    runner = Runner(simulator, tmp_path / "lake", instance)
    assert runner.materialize(EVENTS).success
    first = by_web_id(runner.table("event_frames"))
    open_then = {w for w, r in first.items() if r["is_open"]}
    assert open_then

    simulator.plant.clock.set(frozen=NOW)  # days later: the frames have closed and new ones exist
    assert runner.materialize(EVENTS).success
    second = by_web_id(runner.table("event_frames"))  # raises on duplicates
    start, end = day_bounds(DAY)
    expected = truth.frames(simulator.plant, start, end)
    assert second.keys() == expected.keys() and len(second) > len(first)
    closed = [w for w in open_then if not expected[w]["is_open"]]
    assert closed and all(second[w]["end_time"] == expected[w]["end_time"] for w in closed)
    assert all(not by_web_id(runner.table("alarms"))[w]["is_active"] for w in closed if w in by_web_id(runner.table("alarms")))
