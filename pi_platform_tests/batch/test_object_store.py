"""The assets write their lake to an S3-compatible store when PI_DELTA_ROOT is an s3:// URI."""

from pi_platform.defs.resources import DeltaStorageResource
from pi_platform.storage import DeltaStore
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY, NOW, Runner, day_bounds
from pi_platform_tests.storage.moto import moto_server, s3_client, storage_options


def test_assets_materialise_into_s3(make_simulator, tmp_path, instance):
    simulator = make_simulator(n_tags=5, now=NOW, edge_tags=False)
    with moto_server() as endpoint:
        s3_client(endpoint).create_bucket(Bucket="lake")
        runner = Runner(simulator, tmp_path / "unused", instance)
        runner.resources["delta"] = DeltaStorageResource(root="s3://lake/pi", storage_options=storage_options(endpoint))
        runner.store = DeltaStore("s3://lake/pi", storage_options(endpoint))
        result = runner.materialize(["recorded_values", "event_frames"])
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
        assert runner.materialize(["recorded_values"]).success  # a rerun: predicate overwrite on S3
        start, end = day_bounds(DAY)
        stored = sort_values(runner.store.read("recorded_values").select(VALUE_SCHEMA.names))
        assert stored.equals(truth.recorded(simulator.plant, start, end))
        assert runner.store.read("event_frames").num_rows == len(truth.frames(simulator.plant, start, end))
        assert not (tmp_path / "unused").exists()
