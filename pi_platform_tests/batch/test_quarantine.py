"""A bad payload from PI (per-value Errors injected by the simulator) lands in quarantine with its raw JSON,
fails the quarantine check and nothing else: every other value is stored, none is lost or doubled."""

from collections import Counter

import orjson
import pyarrow.compute as pc

from pi_platform.storage import read_quarantine
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY, NOW, Runner, day_bounds


def test_per_value_errors_are_quarantined_and_fail_only_the_quarantine_check(make_simulator, tmp_path, instance):
    simulator = make_simulator(n_tags=20, now=NOW, edge_tags=False, faults={"value_error_rate": 0.002})
    runner = Runner(simulator, tmp_path / "lake", instance)
    result = runner.materialize(["recorded_values"])
    assert result.success  # the quarantine check is an ERROR but not blocking: good data still flows

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["no_quarantined_rows"].passed
    assert checks["no_quarantined_rows"].metadata["quarantined_rows"].value > 0
    assert all(e.passed for name, e in checks.items() if name != "no_quarantined_rows")

    start, end = day_bounds(DAY)
    expected = truth.recorded(simulator.plant, start, end)
    stored = runner.store.read_range("recorded_values", "event_date", DAY, end.date())
    quarantined = read_quarantine(runner.store, table_name="recorded_values", start=DAY, end=end.date())
    assert quarantined.num_rows > 0
    assert stored.num_rows + quarantined.num_rows == expected.num_rows  # nothing lost, nothing doubled

    def key(row):  # identity of a value independent of its position (positions renumber around a refused one)
        return (row["web_id"], row["timestamp"], row["value"], row["value_str"], row["digital_state"])

    cols = ["web_id", "timestamp", "value", "value_str", "digital_state"]
    missing = Counter(map(key, expected.select(cols).to_pylist())) - Counter(map(key, stored.select(cols).to_pylist()))
    assert sum(missing.values()) == quarantined.num_rows
    raws = [orjson.loads(raw) for raw in quarantined["raw"].to_pylist()]
    assert all("Errors" in raw for raw in raws)
    assert {w for w, *_ in missing} == set(quarantined["web_id"].to_pylist())
    assert pc.all(pc.equal(quarantined["table_name"], "recorded_values")).as_py()


def test_clean_rerun_clears_the_days_quarantine(make_simulator, tmp_path, instance):
    simulator = make_simulator(n_tags=5, now=NOW, edge_tags=False, faults={"value_error_rate": 0.01})
    runner = Runner(simulator, tmp_path / "lake", instance)
    assert runner.materialize(["recorded_values"]).success
    assert read_quarantine(runner.store, table_name="recorded_values", start=DAY, end=day_bounds(DAY)[1].date()).num_rows
    simulator.set_faults(value_error_rate=0.0)
    result = runner.materialize(["recorded_values"])
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.check_name == "no_quarantined_rows")
    start, end = day_bounds(DAY)
    assert runner.store.read_range("recorded_values", "event_date", DAY, end.date()).num_rows == truth.recorded(
        simulator.plant, start, end
    ).num_rows
