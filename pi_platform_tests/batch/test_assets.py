"""Every asset materialised for a day against the simulator equals the plant's ground truth; reruns and
single-run range backfills leave exactly the same tables as daily runs."""

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.storage.tables import TABLES
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import ALL_ASSETS, DAY, day_bounds

SNAPSHOTS = ("af_elements", "af_attributes", "pi_points")


def stored_values(runner, first=DAY, days=1) -> pa.Table:
    start, end = day_bounds(first, days)
    return sort_values(runner.store.read_range("recorded_values", "event_date", start.date(), end.date()).select(VALUE_SCHEMA.names))


def canonical(table: pa.Table, name: str) -> pa.Table:
    return table.sort_by([(key, "ascending") for key in TABLES[name].keys])


def checks_by_name(result) -> dict[tuple[str, str], bool]:
    return {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}


def test_one_day_of_every_catalog_and_value_asset_equals_ground_truth_and_reruns_identically(runner, small_simulator):
    plant = small_simulator.plant
    assets = SNAPSHOTS + ("recorded_values",)
    result = runner.materialize(assets)
    assert result.success

    start, end = day_bounds(DAY)
    expected = truth.recorded(plant, start, end)
    got = stored_values(runner)
    assert got.num_rows == expected.num_rows > 0
    assert got.equals(expected)
    # the edge cases survived: system states, same-timestamp groups, digital states, flags
    assert pc.sum(got["is_system"]).as_py() > 0
    assert pc.max(got["position"]).as_py() >= 1
    assert pc.count(got["digital_state"]).as_py() > 0

    points = runner.table("pi_points")
    assert {
        (r["web_id"], r["name"], r["point_type"], r["zero"], r["span"], r["engineering_units"], r["digital_set"] or None)
        for r in points.to_pylist()
    } == truth.points(plant)
    elements = runner.table("af_elements")
    assert {(r["web_id"], r["path"], r["template_name"], r["parent_path"]) for r in elements.to_pylist()} == truth.elements(plant)
    attributes = runner.table("af_attributes")
    assert {(r["path"], r["element_path"], r["point_web_id"]) for r in attributes.to_pylist()} == truth.attributes(plant)

    checks = checks_by_name(result)
    assert all(checks.values()), {k: v for k, v in checks.items() if not v}
    assert ("recorded_values", "keys_not_null_unique") in checks and ("recorded_values", "tags_with_data") in checks

    materialization = {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()}
    meta = materialization["recorded_values"]
    assert meta["dagster/row_count"].value == expected.num_rows
    assert meta["dagster/last_updated_timestamp"].value == pc.max(expected["timestamp"]).as_py().timestamp()
    assert meta["delta_version"].value == 0 and meta["delta_bytes"].value > 0
    assert "values per hour" in meta["values_per_hour"].value

    # a rerun of the day replaces it exactly: same tables, one more commit each, nothing appended
    before = {name: runner.table(name) for name in assets}
    assert runner.materialize(assets).success
    for name in assets:
        assert canonical(runner.table(name), name).equals(canonical(before[name], name)), name
    assert runner.store.info("recorded_values").version == 1


def test_range_in_one_run_equals_three_daily_runs(make_runner, plain_simulator):
    small_simulator = plain_simulator
    assets = ALL_ASSETS
    ranged, daily = make_runner(small_simulator, "ranged"), make_runner(small_simulator, "daily")
    assert ranged.materialize(assets, days=3).success
    for offset in range(3):
        assert daily.materialize(assets, day=DAY + timedelta(days=offset)).success
    got = stored_values(ranged, days=3)
    assert got.equals(stored_values(daily, days=3))
    start, end = day_bounds(DAY, 3)
    assert got.equals(truth.recorded(small_simulator.plant, start, end))
    assert ranged.store.info("recorded_values").version == 0  # the whole range is one commit
    for name in SNAPSHOTS + ("event_frames", "alarms", "alarm_kpis"):
        assert canonical(ranged.table(name), name).equals(canonical(daily.table(name), name)), name
    for name in SNAPSHOTS:
        assert sorted(set(ranged.table(name)["snapshot_date"].to_pylist())) == [DAY + timedelta(days=i) for i in range(3)]
    assert [k["event_date"] for k in canonical(ranged.table("alarm_kpis"), "alarm_kpis").to_pylist()] == [
        DAY + timedelta(days=i) for i in range(3)
    ]
