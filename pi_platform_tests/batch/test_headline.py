"""The headline claim at its stated size: every asset for one day of a 1,000-tag plant, and the stored
recorded values equal the simulator's ground truth exactly (same rows, same values, states and flags)."""

import pyarrow.compute as pc

from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import ALL_ASSETS, DAY, NOW, Runner, day_bounds
from pi_platform.value_columns import VALUE_SCHEMA, sort_values


def test_thousand_tags_one_day_equals_ground_truth(make_simulator, tmp_path, instance):
    simulator = make_simulator(n_tags=1000, now=NOW)
    runner = Runner(simulator, tmp_path / "lake", instance)
    result = runner.materialize(ALL_ASSETS)
    assert result.success
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == []

    start, end = day_bounds(DAY)
    stored = sort_values(runner.store.read("recorded_values").select(VALUE_SCHEMA.names))
    expected = truth.recorded(simulator.plant, start, end)
    assert stored.num_rows == expected.num_rows > 1_000_000
    assert stored.equals(expected)
    assert pc.count_distinct(stored["web_id"]).as_py() == len(simulator.plant.points) >= 1000
    assert runner.store.read("pi_points").num_rows == len(simulator.plant.points)
    assert runner.store.read("af_attributes").num_rows == len(simulator.plant.attributes)
    assert runner.store.read("event_frames").num_rows == len(truth.frames(simulator.plant, start, end))
