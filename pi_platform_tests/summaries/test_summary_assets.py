"""`recorded_summaries` and `interpolated_values` materialised through Dagster equal the independent truth."""

from datetime import timedelta

import dagster as dg
import pytest

from pi_platform.batch.summaries import calculation_basis
from pi_platform.errors import ConfigError
from pi_platform.pitime import to_us
from pi_platform_tests.batch.conftest import Runner
from pi_platform_tests.summaries import truth
from pi_platform_tests.summaries.conftest import DAY, DAY_START, TAGS

STATS = {"average": "Average", "minimum": "Minimum", "maximum": "Maximum", "std_dev": "StdDev", "range": "Range",
         "percent_good": "PercentGood"}


@pytest.fixture
def runner(sim, tmp_path):
    with dg.instance_for_test() as instance:
        yield Runner(sim, tmp_path / "lake", instance)


def _config(asset: str, **fields) -> dict:
    return {"ops": {asset: {"config": {"tags": list(TAGS), **fields}}}}


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _assert_summaries(table, sim, points, hours: int, basis: str) -> None:
    size = timedelta(hours=hours)
    spans = truth.hours(DAY_START, 24 // hours, size)
    rows = {(r["name"], to_us(r["interval_start"])): r for r in table.to_pylist()}
    assert len(rows) == table.num_rows == len(TAGS) * len(spans)
    for name in TAGS:
        point = points[name]
        raw = truth.raw(sim.plant, point.web_id, DAY_START, DAY_START + timedelta(days=1))
        for lo, hi in spans:
            row = rows[(name, lo)]
            expected = (truth.time_weighted(raw, lo, hi, point.step) if basis == "TimeWeighted"
                        else truth.event_weighted(raw, lo, hi, include_end=False))
            assert (to_us(row["interval_end"]), row["calculation_basis"], row["units"]) == (hi, basis, point.units)
            assert row["count"] == truth.event_weighted(raw, lo, hi, include_end=False)["Count"]  # events, any basis
            for column, kind in STATS.items():
                numeric = point.kind in ("numeric", "integer") or kind == "PercentGood"
                want = expected.get(kind) if numeric else None
                if want is None:
                    assert row[column] is None, (name, lo, column)
                else:
                    slack = 1e-6 * max(1.0, abs(expected["Average"])) if kind == "StdDev" else 1e-9
                    assert row[column] == pytest.approx(want, rel=1e-9, abs=slack), (name, lo, column)


def test_summaries_equal_truth_for_both_bases_and_a_rerun_replaces_the_day(runner, sim, points):
    result = runner.materialize(["recorded_summaries"], run_config=_config("recorded_summaries"))
    assert result.success and all(_checks(result).values()), _checks(result)
    assert "every_tag_every_interval" in _checks(result)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dagster/row_count"].value == 24 * len(TAGS)
    assert metadata["calculation_basis"].value == "TimeWeighted" and "preview" in metadata
    _assert_summaries(runner.table("recorded_summaries"), sim, points, 1, "TimeWeighted")

    again = runner.materialize(["recorded_summaries"], run_config=_config(
        "recorded_summaries", interval="6h", calculation_basis="eventweighted"))
    assert again.success and all(_checks(again).values()), _checks(again)
    _assert_summaries(runner.table("recorded_summaries"), sim, points, 6, "EventWeighted")


def test_interpolated_values_equal_truth(runner, sim, points):
    result = runner.materialize(["interpolated_values"], run_config=_config("interpolated_values"))
    assert result.success and all(_checks(result).values()), _checks(result)
    table = runner.table("interpolated_values")
    assert table.num_rows == 24 * len(TAGS)
    raws = {name: truth.raw(sim.plant, p.web_id, DAY_START, DAY_START + timedelta(days=1)) for name, p in points.items()}
    for row in table.to_pylist():
        point = points[row["name"]]
        good, expected = truth.interpolated(raws[row["name"]], to_us(row["timestamp"]), point.step)
        assert row["good"] is good and row["event_date"] == DAY
        if isinstance(expected, str):
            assert row["digital_state"] == expected
        else:
            assert row["value"] == pytest.approx(expected, rel=1e-6)


def test_a_bad_interval_or_basis_fails_the_run_with_one_line(runner):
    result = runner.materialize(["recorded_summaries"], run_config=_config("recorded_summaries", interval="soon"),
                                raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("interval='soon': cannot read interval") and "\n" not in message
    with pytest.raises(ConfigError, match="use one of TimeWeighted, EventWeighted") as refused:
        calculation_basis("Weighted")  # the same one-line path as `interval`, without a second run
    assert "\n" not in str(refused.value)
