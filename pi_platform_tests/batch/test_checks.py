"""The blocking checks read what is stored, so they catch damage no run intended (a foreign writer,
a schema drift), and the row-count check warns on a drop."""

from datetime import timedelta

import dagster as dg
import pyarrow as pa
from deltalake import write_deltalake

from pi_platform.defs import checks
from pi_platform.batch.window import DayWindow
from pi_platform.defs.recorded.assets import tags_with_data_check, values_in_range_check
from pi_platform.batch.recorded_stats import window_stats
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import RECORDED_VALUES
from pi_platform_tests.storage.test_store import DAY0, values_for

WINDOW = DayWindow(DAY0, DAY0 + timedelta(days=1))


def stored(tmp_path, days: int = 1) -> DeltaStore:
    store = DeltaStore(str(tmp_path))
    store.overwrite_range("recorded_values", values_for(days), partition_column="event_date", start=DAY0,
                          end=DAY0 + timedelta(days=days))
    return store


def test_clean_table_passes_blocking_checks(tmp_path):
    store = stored(tmp_path)
    assert checks.key_check(store, RECORDED_VALUES, WINDOW).passed
    assert checks.schema_check(store, RECORDED_VALUES).passed


def test_duplicate_keys_written_behind_our_back_fail_the_key_check(tmp_path):
    store = stored(tmp_path)
    write_deltalake(store.uri("recorded_values"), values_for(1).slice(0, 3), mode="append")
    result = checks.key_check(store, RECORDED_VALUES, WINDOW)
    assert not result.passed and result.metadata["duplicate_keys"].value == 3


def test_schema_drift_fails_the_schema_check(tmp_path):
    store = DeltaStore(str(tmp_path))
    drifted = values_for(1).drop_columns(["units"]).append_column("unit", pa.array(["x"] * values_for(1).num_rows))
    write_deltalake(store.uri("recorded_values"), drifted, partition_by=["event_date"])
    result = checks.schema_check(store, RECORDED_VALUES)
    assert not result.passed
    assert set(result.metadata["problems"].value) == {"missing units", "unexpected unit"}


def test_row_count_drop_warns(tmp_path):
    store = DeltaStore(str(tmp_path))
    data = values_for(2)
    second = DAY0 + timedelta(days=1)
    store.overwrite_range("recorded_values", data.filter(pa.compute.equal(data["event_date"], pa.scalar(DAY0))),
                          partition_column="event_date", start=DAY0, end=second)
    store.overwrite_range("recorded_values", data.filter(pa.compute.equal(data["event_date"], pa.scalar(second))).slice(0, 5),
                          partition_column="event_date", start=second, end=second + timedelta(days=1))
    result = checks.row_count_check(store, RECORDED_VALUES, DayWindow(second, second + timedelta(days=1)))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert checks.row_count_check(store, RECORDED_VALUES, WINDOW).passed  # no baseline for the first day


def test_range_and_silent_tag_checks_see_the_stored_window(tmp_path):
    store = stored(tmp_path)
    selected = pa.table(
        {
            "web_id": ["W0", "W1", "W9"],
            "name": ["tag0", "tag1", "tag9"],
            "point_type": ["Float32", "Digital", "Float64"],
            "zero": [0.0, 0.0, 0.0],
            "span": [10.0, 1.0, 100.0],
        }
    )
    stats = window_stats(store, WINDOW, selected)
    assert stats.rows == values_for(1).num_rows
    assert sum(stats.per_hour["rows"].to_pylist()) == stats.rows and stats.per_hour.num_rows == 24
    # W0 holds 0..23 with span 10: the values 11..23 are out of range; W1 is Digital (no range); W9 is silent
    assert stats.out_of_range.select(["web_id", "rows", "max"]).to_pylist() == [{"web_id": "W0", "rows": 13, "max": 23.0}]
    silent = tags_with_data_check(selected, stats.per_tag)
    assert not silent.passed and silent.metadata["names"].value == ["tag9"]
    assert not values_in_range_check(stats.out_of_range).passed
