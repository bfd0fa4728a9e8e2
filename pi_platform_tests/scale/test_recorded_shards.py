"""Tag shards of a recorded_values day: a stable split by WebID hash, and staging that works where the lake is,
object storage included. The 4-shard multiprocess run with a retried shard is in test_deployment.py, where it runs
through the daemon and the code server."""

import dagster as dg

from pi_platform import sharding
from pi_platform.defs.resources import DeltaStorageResource
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import RECORDED_VALUES
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY, NOW, Runner, day_bounds
from pi_platform_tests.storage.moto import moto_server, s3_client, storage_options

SHARDS = 4


def test_shards_are_stable_and_cover_every_tag_once():
    web_ids = [f"P1DP{i:08d}AAAAAAAAAAAAAAAA" for i in range(1000)]
    parts = sharding.split(web_ids, SHARDS)
    assert sorted(w for part in parts for w in part) == sorted(web_ids)
    assert min(len(p) for p in parts) > 1000 / SHARDS * 0.8  # spread, not one heavy shard
    # a tag's shard depends on its WebID only, not on the order or company it is listed in
    assert [set(p) for p in sharding.split(list(reversed(web_ids)), SHARDS)] == [set(p) for p in parts]
    assert sharding.split(web_ids[:10], SHARDS) == [[w for w in part if w in web_ids[:10]] for part in parts]
    assert sharding.split(web_ids, 1) == [web_ids]


def test_sharded_day_stages_and_commits_in_s3(make_simulator, tmp_path):
    """The shards stage in the lake's own bucket (so pods on other machines can), and the staging is removed."""
    simulator = make_simulator(n_tags=6, now=NOW, edge_tags=False)
    start, end = day_bounds(DAY)
    with moto_server() as endpoint, dg.instance_for_test() as instance:
        s3_client(endpoint).create_bucket(Bucket="lake")
        runner = Runner(simulator, tmp_path / "unused", instance)
        runner.resources["delta"] = DeltaStorageResource(root="s3://lake/pi", storage_options=storage_options(endpoint))
        runner.store = DeltaStore("s3://lake/pi", storage_options(endpoint))
        result = runner.materialize(["recorded_values"], run_config={"ops": {"recorded_values": {"config": {"shards": 3}}}})
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
        stored = sort_values(runner.store.read(RECORDED_VALUES.name).select(VALUE_SCHEMA.names))
        assert stored.equals(truth.recorded(simulator.plant, start, end))
        staged = [e for e in result.all_events if e.step_key and "extract_recorded_shard" in e.step_key
                  and e.event_type_value == "STEP_SUCCESS"]
        assert len(staged) == 3
        assert s3_client(endpoint).list_objects_v2(Bucket="lake", Prefix="pi/_staging/").get("KeyCount", 0) == 0
    assert not (tmp_path / "unused").exists()
