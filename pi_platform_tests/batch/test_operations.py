"""Operations: schedules pick the right partitions, the maintenance job compacts, the definitions validate,
and the `dagster` CLI materialises a partition in a subprocess against a live simulator."""

import os
import subprocess
import sys
from datetime import datetime, timezone

import dagster as dg

from pi_platform.defs.definitions import defs
from pi_platform.defs.resources import DeltaStorageResource
from pi_platform.storage import DeltaStore
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY, NOW, day_bounds
from pi_platform_tests.storage.test_store import values_for


def test_definitions_validate_and_hold_every_asset():
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"af_elements", "af_attributes", "pi_points", "recorded_values", "event_frames", "alarms", "alarm_kpis"} <= keys
    for name in ("af_elements", "af_attributes", "pi_points", "recorded_values", "event_frames", "alarms", "alarm_kpis"):
        assets_def = defs.get_assets_def(name)
        spec = next(iter(assets_def.specs))
        assert spec.owners and spec.kinds >= {"deltalake"} and spec.description and spec.group_name
        assert spec.freshness_policy is not None
        assert assets_def.backfill_policy == dg.BackfillPolicy.single_run()
        reads_pi = name != "alarm_kpis"
        # backfills share the PI pool (recorded_values is a graph: its plan and shard ops read PI, its commit does not)
        pools = {op.pool for op in assets_def.node_def.iterate_op_defs()}
        assert ("pi_webapi" in pools) == reads_pi, name


def test_previous_day_schedule_targets_yesterday_after_the_lag():
    schedule = defs.resolve_schedule_def("previous_day_schedule")
    tick = datetime(2024, 3, 4, 1, 0, tzinfo=timezone.utc)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def())
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2024-03-03"]
    assert schedule.cron_schedule == "0 1 * * *"


def test_today_refresh_targets_today():
    schedule = defs.resolve_schedule_def("today_refresh_schedule")
    tick = datetime(2024, 3, 4, 13, 45, tzinfo=timezone.utc)
    with dg.instance_for_test() as instance:
        requests = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def())).run_requests
    assert [r.partition_key for r in requests] == ["2024-03-04"]
    assert set(defs.resolve_job_def("pi_today").asset_layer.executable_asset_keys) >= {dg.AssetKey("recorded_values")}


def test_freshness_sensor_evaluates_without_a_run():
    sensor = defs.resolve_sensor_def("pi_freshness_checks_sensor")
    with dg.instance_for_test() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert not result.run_requests
    assert {e.asset_key.to_user_string() for e in result.asset_events} == {"recorded_values", "event_frames"}
    assert all(not e.passed and e.description == "never materialised" for e in result.asset_events)


def test_maintenance_job_compacts_every_table(tmp_path):
    store = DeltaStore(str(tmp_path))
    data = values_for(1)
    for i in range(0, 20, 5):
        store.append_once("recorded_values", data.slice(i, 5), app_id="t", version=i + 1)
    before = store.info("recorded_values").num_files
    result = defs.resolve_job_def("delta_maintenance").execute_in_process(
        resources={"delta": DeltaStorageResource(root=str(tmp_path))},
        run_config={"ops": {"compact_and_vacuum": {"config": {"retention_hours": 0}}}},
    )
    assert result.success
    assert before == 4 and store.info("recorded_values").num_files == 1
    assert store.read("recorded_values").num_rows == 20


def test_dagster_cli_materialises_a_partition(make_simulator, tmp_path):
    simulator = make_simulator(n_tags=8, now=NOW, edge_tags=False)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PI_WEBAPI_URL": simulator.base_url,
        "PI_DELTA_ROOT": str(tmp_path / "lake"),
        "PI_PARTITIONS_START": "2024-01-01",
    }
    process = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dagster"), "asset", "materialize", "-m", "pi_platform.defs.definitions",
         "--select", "recorded_values", "--partition", DAY.isoformat()],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240, start_new_session=True,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "RUN_SUCCESS" in process.stderr + process.stdout
    start, end = day_bounds(DAY)
    stored = DeltaStore(str(tmp_path / "lake")).read("recorded_values")
    assert set(stored["event_date"].to_pylist()) == {DAY}
    assert sort_values(stored.select(VALUE_SCHEMA.names)).equals(truth.recorded(simulator.plant, start, end))


def test_maintenance_schedule_requests_the_maintenance_job():
    schedule = defs.resolve_schedule_def("delta_maintenance_schedule")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2024, 3, 4, 3, 30, tzinfo=timezone.utc),
            repository_def=defs.get_repository_def(),
        )
        requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1 and schedule.job_name == "delta_maintenance"


def run_freshness_checks(runner) -> dict[str, dg.AssetCheckEvaluation]:
    from pi_platform.defs.calendar.freshness import FRESHNESS_CHECKS

    keys = {key for checks in FRESHNESS_CHECKS for key in checks.check_keys}
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(), asset_check_selection=keys)
    result = job.execute_in_process(instance=runner.instance, resources=runner.resources)
    return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}


def test_data_level_freshness_uses_the_newest_value_time(make_simulator, make_runner):
    old = make_runner(make_simulator(n_tags=3, now=NOW, edge_tags=False), "old")
    assert old.materialize(["recorded_values"]).success
    stale = run_freshness_checks(old)["recorded_values"]
    newest = old.store.read("recorded_values")["timestamp"]
    assert not stale.passed
    assert stale.metadata["dagster/last_updated_timestamp"].value == max(newest.to_pylist()).timestamp()

    live = make_runner(make_simulator(n_tags=3, edge_tags=False), "live")  # real clock: today's data is fresh
    today = datetime.now(timezone.utc).date()
    assert live.materialize(["recorded_values"], day=today).success
    assert run_freshness_checks(live)["recorded_values"].passed
