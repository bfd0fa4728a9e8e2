"""The feed against ground truth while a real collector commits: `pi-platform stream` runs against the simulator
(channels, backfill, PI's live corrections merged, self-compaction every few commits), a follower joins late with
--since in the middle of what is already committed, and what it delivered equals, stream by stream, what the
simulator's plant holds since that moment, and equals the table: no gap at the replay/live switch, nothing twice."""

from datetime import timedelta

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from conftest import Follower, canonical, last_per_key, since_rows, wait_for
from deltalake import DeltaTable

from pi_platform.bench.chaos import CollectorProcess, stream_rows, table_values
from pi_platform.feed import Feed
from pi_platform.simulator.clock import to_us
from pi_platform.streaming.state import write_subscription
from pi_platform.value_columns import VALUE_SCHEMA


def _mismatched(plant, delivered: pa.Table, web_ids: list[str], since, frozen) -> list[str]:
    state = last_per_key(delivered).select(VALUE_SCHEMA.names).cast(VALUE_SCHEMA)
    bad = []
    for web_id in web_ids:
        got = stream_rows(state, web_id, to_us(since), to_us(frozen))
        truth = stream_rows(plant.recorded(web_id, since, frozen, now=frozen).cast(VALUE_SCHEMA), web_id,
                            to_us(since), to_us(frozen))
        if got.to_pylist() != truth.to_pylist():
            bad.append(f"{plant.point_by_webid(web_id).name}: {got.num_rows} delivered, truth {truth.num_rows}")
    return bad


def test_late_joining_feed_equals_the_plant_while_a_collector_commits(make_simulator, tmp_path):
    sim = make_simulator(n_tags=8, values_per_minute=1200)
    plant = sim.plant
    web_ids = [p.web_id for p in plant.points]
    state_dir, delta_root = tmp_path / "state", tmp_path / "lake"
    write_subscription(state_dir, web_ids, start="*-2m")  # a backfill, then PI's corrections arrive live
    collector = CollectorProcess(state_dir, delta_root, sim.base_url,
                                 ["--batch-age", "0.3", "--compact-every", "4", "--snapshot-interval", "3600"]).start()
    uri = str(delta_root / "stream_values")
    follower = None
    try:
        def backfilled() -> bool:  # the start (*-2m) backfill and live values are both committed
            stamps = table_values(delta_root)["timestamp"]
            return len(stamps) > 0 and pc.min(stamps).as_py() < plant.clock.now() - timedelta(seconds=90)
        wait_for(backfilled, "the collector's backfill", 90)
        since = plant.clock.now() - timedelta(seconds=60)  # mid-stream: committed rows on both sides
        assert pc.max(table_values(delta_root)["timestamp"]).as_py() > since
        follower = Follower(Feed(uri, since=since, poll_interval_s=0.1)).start()
        wait_for(follower.caught_up, "the replay", 60)
        joined = next(b for b in follower.batches if b.kind == "caught_up").position.version

        def exercised() -> bool:  # a merge may correct values older than `since`: wait for one inside the window
            modes = {h.get("pi_platform.mode") for h in DeltaTable(uri).history() if h["version"] >= joined}
            rows = follower.rows()
            return {"compaction", "append", "merge"} <= modes and rows.num_rows > 0 and pc.any(rows["substituted"]).as_py()
        wait_for(exercised, "live appends, a compaction and a merge of PI corrections after the follower joined, "
                 "with a corrected value inside the followed window", 120)

        frozen = plant.clock.now()  # no new values or corrections from here: a constant to converge to
        httpx.post(f"{sim.admin_url}/clock", json={"now": frozen.isoformat()}).raise_for_status()
        wait_for(lambda: not _mismatched(plant, follower.rows(), web_ids, since, frozen),
                 "the feed to hold what the plant holds", 90)
        assert collector.terminate() == 0
        wait_for(lambda: follower.reached(DeltaTable(uri).version()), "the collector's last commit", 60)
    finally:
        if follower is not None:
            follower.stop()
        collector.cleanup()

    assert follower.error is None
    delivered = follower.rows()
    table = since_rows(table_values(delta_root), since)
    assert canonical(last_per_key(delivered), VALUE_SCHEMA).to_pylist() == canonical(table, VALUE_SCHEMA).to_pylist()
    content = [c for c in delivered.column_names if c != "received_at"]  # a delivery twice = same key and content
    assert delivered.group_by(content, use_threads=False).aggregate([]).num_rows == delivered.num_rows
    assert _mismatched(plant, delivered, web_ids, since, frozen) == []
    assert pc.min(delivered["timestamp"]).as_py() >= since
    assert pc.any(delivered["is_system"]).as_py() and pc.any(delivered["substituted"]).as_py()

