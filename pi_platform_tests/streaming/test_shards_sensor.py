"""The stream_collector sensor with PI_STREAM_SHARDS=2 on a real instance: it starts both shards, gives each the
whole subscription (each keeps the tags its WebID hash gives it), reports commits per shard, names the shard in
the aggregated checks (a bad tag, a killed shard), restarts only the dead shard; `pi-platform stream --status`
shows both."""

import os
import signal
import subprocess
import time

import dagster as dg
from streaming_helpers import Ticker, wait_until

from pi_platform import cli
from pi_platform.bench.chaos import unknown_point
from pi_platform.defs.streaming.checks import STREAM_FLOWING
from pi_platform.defs.streaming.definitions import build_defs
from pi_platform.defs.streaming.gap_checks import COLLECTOR_PROBLEMS
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.defs.streaming.sensors import SensorCursor, retire_other_layouts
from pi_platform.sharding import shard_of
from pi_platform.streaming.shards import all_shards
from pi_platform.streaming.state import read_status, read_subscription


def test_sensor_supervises_every_shard_and_checks_name_the_shard(make_simulator, tmp_path, monkeypatch, capsys):
    sim = make_simulator(n_tags=10, values_per_minute=300)
    points = [p for p in sim.plant.points if not p.name.startswith("EDGE.")][:8]
    bogus = unknown_point(sim.plant, "SHARD.UNKNOWN")
    collector = StreamCollectorResource(
        mode="local", state_dir=str(tmp_path / "state"), delta_root=str(tmp_path / "lake"), pi_url=sim.base_url,
        web_ids=[p.web_id for p in points] + [bogus], shards=2, heartbeat_timeout_s=10.0, startup_grace_s=6.0,
        collector_args=["--batch-age", "0.3", "--heartbeat-rate", "1"], snapshot_interval_s=2.0,
        silent_after_s=6.0, report_interval_s=0.0)
    owner = {p.web_id: shard_of(p.web_id, 2) + 1 for p in points}
    assert set(owner.values()) == {1, 2}  # both shards have tags to collect
    shards = all_shards(2)
    with dg.instance_for_test() as instance:
        dg.Definitions.validate_loadable(build_defs(collector))
        ticker = Ticker(instance, collector)
        try:
            first = SensorCursor.parse(ticker.tick().cursor)
            assert set(first.shards) == {"1/2", "2/2"} and first.pid is None
            for shard in shards:  # the whole subscription to each: names and paths are resolved by the shard
                assert read_subscription(collector.shard_dir(shard))["web_ids"] == sorted(collector.web_ids)

            def both_collecting() -> bool:
                statuses = [read_status(collector.shard_dir(s)) or {} for s in shards]
                return all((s.get("commits") or 0) >= 2 for s in statuses)

            wait_until(both_collecting, 90, "both shards committing")
            for shard in shards:
                status = read_status(collector.shard_dir(shard))
                assert status["shard"] == shard.label and status["app_id"].endswith(f"-shard-{shard.index}-of-2")
                assert status["subscription"]["streams"] == sum(1 for o in owner.values() if o == shard.index)

            def per_writer() -> dict | None:
                for event in ticker.tick().asset_events:
                    if isinstance(event, dg.AssetMaterialization) and "by_writer" in event.metadata:
                        return event.metadata["by_writer"].value
                return None

            writers = wait_until(per_writer, 60, "a report covering both shards' commits")
            assert sorted(w.rsplit("-shard-", 1)[1] for w in writers) == ["1-of-2", "2-of-2"]

            # The unknown WebID is named once, by the shard that owns it.
            bad_owner = shard_of(bogus, 2) + 1
            problems = wait_until(lambda: (e := ticker.check(COLLECTOR_PROBLEMS)) and not e.passed and e, 60,
                                  "the bad tag in collector_problems")
            assert problems.description.count("bad tag") == 1
            assert f"shard {bad_owner}/2: bad tag" in problems.description

            # kill -9 one shard: stream_flowing names it, and only that shard is restarted.
            victim = SensorCursor.parse(ticker.cursor).shards["2/2"]["pid"]
            survivor = SensorCursor.parse(ticker.cursor).shards["1/2"]["pid"]
            os.killpg(victim, signal.SIGKILL)
            silent = wait_until(lambda: (e := ticker.check(STREAM_FLOWING)) and not e.passed and e, 60,
                                "stream_flowing to name the dead shard")
            assert "shard 2/2:" in silent.description
            wait_until(lambda: SensorCursor.parse(ticker.tick().cursor).shards["2/2"]["pid"] != victim, 60,
                       "the dead shard restarted")
            cursor = SensorCursor.parse(ticker.cursor)
            assert cursor.shards["2/2"]["restarts"] == 2 and cursor.shards["1/2"] == {**cursor.shards["1/2"],
                                                                                     "pid": survivor, "restarts": 1}
            wait_until(lambda: ticker.check(STREAM_FLOWING).passed, 90, "every shard flowing again")

            # `pi-platform stream --status` shows every shard of the configured count.
            monkeypatch.setenv("PI_STREAM_SHARDS", "2")
            assert cli.main(["stream", "--status", "--state-dir", collector.state_dir]) == 0
            out = capsys.readouterr().out
            assert "== shard 1/2" in out and "== shard 2/2" in out
            assert "collector collector shard 2/2 pid" in out
        finally:
            ticker.kill_all()


def test_changing_the_shard_count_stops_the_old_collectors_gracefully_first(tmp_path):
    """Going from one collector to two shards: the sensor SIGTERMs the collector it started before (it drains and
    commits, which the shards need to take over) and starts no shard until it is gone."""
    collector = StreamCollectorResource(mode="local", state_dir=str(tmp_path / "state"),
                                        delta_root=str(tmp_path / "lake"), shards=2)
    old = subprocess.Popen(["sleep", "60"], start_new_session=True)  # stands in for the unsharded collector
    try:
        cursor = SensorCursor(pid=old.pid, started_at=time.time() - 100, restarts=1)
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(instance=instance)
            assert retire_other_layouts(context, collector, cursor)  # still running: no shard started yet
            assert old.wait(10) == -signal.SIGTERM  # graceful: the collector's handler drains and commits
            assert not retire_other_layouts(context, collector, cursor)  # gone: the shards may start
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()
    assert cursor.pid is None and cursor.shards == {}
