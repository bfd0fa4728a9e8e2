"""A quiet instance: ~one commit a second becomes one materialisation per report interval, and unchanged
check outcomes are not re-emitted between reports."""

import dataclasses
import time

import dagster as dg
from test_compaction import _batch

from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.defs.streaming.sensors import SensorCursor, stream_collector_sensor
from pi_platform.storage import DeltaStore
from pi_platform.streaming.sink import StreamSink


def _tick(collector: StreamCollectorResource, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(cursor=cursor, resources={"stream_collector": collector})
    return stream_collector_sensor(context)


def _kinds(result: dg.SensorResult) -> tuple[list[dg.AssetMaterialization], list[dg.AssetCheckEvaluation]]:
    events = result.asset_events
    return ([e for e in events if isinstance(e, dg.AssetMaterialization)],
            [e for e in events if isinstance(e, dg.AssetCheckEvaluation)])


def test_commits_are_reported_once_per_interval_with_what_they_cover(tmp_path):
    sink = StreamSink(DeltaStore(str(tmp_path / "lake")), "pi-platform-stream:collector")
    collector = StreamCollectorResource(mode="external", state_dir=str(tmp_path / "state"),
                                        delta_root=str(tmp_path / "lake"), report_interval_s=3600.0)
    for i in range(3):
        sink.commit(_batch(1_700_000_000_000_000 + i * 1000, 10), version=i + 1)

    first = _tick(collector, None)
    materializations, evaluations = _kinds(first)
    assert len(materializations) == 1 and evaluations  # first tick: latest commit and every check
    for i in range(3, 15):  # a dozen more one-second commits
        sink.commit(_batch(1_700_000_000_000_000 + i * 1000, 10), version=i + 1)

    second = _tick(collector, first.cursor)
    materializations, evaluations = _kinds(second)
    assert materializations == [] and evaluations == []  # not due, and no check changed

    cursor = SensorCursor.parse(second.cursor)
    due = dataclasses.replace(cursor, reported_at=time.time() - 3601).dump()  # an interval later
    (report,), evaluations = _kinds(_tick(collector, due))
    assert report.metadata["commits"].value == 12 and report.metadata["rows"].value == 120
    assert report.metadata["first_delta_version"].value == cursor.delta_version + 1
    assert len(evaluations) == len(_kinds(first)[1])  # the periodic re-statement of every check


def test_collector_keeps_the_file_count_bounded_between_maintenance_runs(make_simulator, collector_process, tmp_path):
    from deltalake import DeltaTable
    from streaming_helpers import wait_until

    from pi_platform.streaming.state import write_subscription

    sim = make_simulator(n_tags=4, values_per_minute=600)
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    write_subscription(state_dir, [p.web_id for p in sim.plant.points[:3]], start="*-1m")
    collector = collector_process(state_dir, lake, sim.base_url, ["--batch-age", "0.2", "--compact-every", "5"]).start()
    wait_until(lambda: (collector.status().get("commits") or 0) >= 16, 90, "16 commits")
    assert collector.terminate() == 0
    table = DeltaTable(str(lake / "stream_values"))
    commits = collector.status()["commits"]
    assert any(h.get("pi_platform.mode") == "compaction" for h in table.history())
    assert len(table.file_uris()) < commits  # without compaction every commit would be a live file


def test_a_collector_still_coming_up_is_neither_restarted_nor_alarmed(tmp_path):
    """Past the grace period, our collector that is alive but has not committed yet is still starting (a loaded
    machine imports and opens the lake slowly); restarting it would kill it before it could ever beat."""
    import subprocess

    from pi_platform.defs.streaming.sensors import starting

    collector = StreamCollectorResource(mode="local", state_dir=str(tmp_path / "state"),
                                        delta_root=str(tmp_path / "lake"), startup_grace_s=1.0,
                                        startup_timeout_s=60.0)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        cursor = SensorCursor(pid=sleeper.pid, started_at=time.time() - 5)
        assert starting(collector, cursor, None)  # alive, no status of its own yet
        assert starting(collector, cursor, {"pid": sleeper.pid, "commits": 0})
        assert not starting(collector, cursor, {"pid": sleeper.pid, "commits": 3})  # it committed: judged normally
        assert not starting(collector, dataclasses.replace(cursor, started_at=time.time() - 61), None)  # too long
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not starting(collector, cursor, None)  # exited: restart it
