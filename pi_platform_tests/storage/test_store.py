"""DeltaStore against real Delta tables in a temp dir: every write pattern is idempotent."""

from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pi_platform.storage import DeltaStore, StorageError
from pi_platform.storage.tables import RECORDED_VALUES
from pi_platform.value_columns import VALUE_SCHEMA, sort_values

DAY0 = date(2024, 3, 1)


def values_for(days: int, per_day: int = 24, tags: int = 2) -> pa.Table:
    """Hourly values per tag, with a same-timestamp pair at midnight of each day (positions 0 and 1)."""
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    rows: dict[str, list] = {f.name: [] for f in RECORDED_VALUES.schema}
    for tag in range(tags):
        for i in range(days * per_day):
            ts = start + timedelta(hours=24 * i / per_day)
            for position in range(2 if i % per_day == 0 else 1):
                rows["web_id"].append(f"W{tag}")
                rows["name"].append(f"tag{tag}")
                rows["timestamp"].append(ts)
                rows["position"].append(position)
                rows["value"].append(float(i + position))
                rows["value_str"].append(None)
                rows["digital_state"].append(None)
                rows["digital_code"].append(None)
                for flag in ("is_system", "good", "questionable", "substituted", "annotated"):
                    rows[flag].append(flag == "good")
                rows["units"].append("degC")
                rows["event_date"].append(ts.date())
    return pa.table(rows, schema=RECORDED_VALUES.schema)


def day_slice(table: pa.Table, first: date, last_exclusive: date) -> pa.Table:
    d = table["event_date"]
    return table.filter(pc.and_(pc.greater_equal(d, pa.scalar(first)), pc.less(d, pa.scalar(last_exclusive))))


def write_days(store: DeltaStore, table: pa.Table, first: date, days: int) -> None:
    store.overwrite_range(
        "rv", day_slice(table, first, first + timedelta(days=days)),
        partition_column="event_date", start=first, end=first + timedelta(days=days),
    )


def content(store: DeltaStore, name: str) -> pa.Table:
    return sort_values(store.read(name).select(VALUE_SCHEMA.names))


def test_range_overwrite_is_idempotent_and_equals_daily_writes(tmp_path):
    data = values_for(3)
    single, daily = DeltaStore(str(tmp_path / "a")), DeltaStore(str(tmp_path / "b"))
    write_days(single, data, DAY0, 3)
    write_days(single, data, DAY0, 3)  # rerun of the whole range
    for offset in range(3):
        write_days(daily, data, DAY0 + timedelta(days=offset), 1)
    write_days(daily, data, DAY0 + timedelta(days=1), 1)  # rerun of one day
    expected = sort_values(data.select(VALUE_SCHEMA.names))
    assert content(single, "rv").equals(expected)
    assert content(daily, "rv").equals(expected)
    assert single.info("rv").version == 1  # one commit per range write


def test_range_overwrite_leaves_other_days_and_deletes_with_empty_data(tmp_path):
    store = DeltaStore(str(tmp_path))
    data = values_for(3)
    write_days(store, data, DAY0, 3)
    store.overwrite_range("rv", data.slice(0, 0), partition_column="event_date",
                          start=DAY0 + timedelta(days=1), end=DAY0 + timedelta(days=2))
    left = store.read("rv")
    assert sorted(set(left["event_date"].to_pylist())) == [DAY0, DAY0 + timedelta(days=2)]
    assert left.num_rows == data.num_rows - day_slice(data, DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)).num_rows


def test_range_overwrite_refuses_rows_outside_the_range(tmp_path):
    store = DeltaStore(str(tmp_path))
    data = values_for(2)
    write_days(store, data, DAY0, 1)
    with pytest.raises(Exception):
        store.overwrite_range("rv", data, partition_column="event_date", start=DAY0, end=DAY0 + timedelta(days=1))
    assert store.read("rv").num_rows == day_slice(data, DAY0, DAY0 + timedelta(days=1)).num_rows


def test_streamed_reader_is_one_commit(tmp_path):
    store = DeltaStore(str(tmp_path))
    data = values_for(2)
    reader = pa.RecordBatchReader.from_batches(data.schema, iter(data.to_batches(max_chunksize=7)))
    info = store.overwrite_range("rv", reader, partition_column="event_date", start=DAY0, end=DAY0 + timedelta(days=2))
    assert info.version == 0 and info.size_bytes > 0
    assert content(store, "rv").equals(sort_values(data.select(VALUE_SCHEMA.names)))


FRAME = pa.schema([("web_id", pa.string()), ("end_time", pa.timestamp("us", tz="UTC")), ("name", pa.string())])


def test_upsert_updates_open_frames_and_never_duplicates(tmp_path):
    store = DeltaStore(str(tmp_path))
    closed = datetime(2024, 3, 2, tzinfo=timezone.utc)
    store.upsert("ef", pa.table({"web_id": ["A", "B"], "end_time": [None, closed], "name": ["a", "b"]}, schema=FRAME), keys=["web_id"])
    store.upsert("ef", pa.table({"web_id": ["A", "C"], "end_time": [closed, None], "name": ["a", "c"]}, schema=FRAME), keys=["web_id"])
    store.upsert("ef", pa.table({"web_id": ["A", "C"], "end_time": [closed, None], "name": ["a", "c"]}, schema=FRAME), keys=["web_id"])
    rows = store.read("ef").sort_by("web_id").to_pylist()
    assert [r["web_id"] for r in rows] == ["A", "B", "C"]
    assert rows[0]["end_time"] == closed and rows[2]["end_time"] is None


def test_append_once_commits_each_batch_exactly_once(tmp_path):
    store = DeltaStore(str(tmp_path))
    batch = values_for(1).slice(0, 10)
    assert store.append_once("sv", batch, app_id="collector", version=1) is not None
    assert store.append_once("sv", batch, app_id="collector", version=1) is None  # retry after a crash
    assert store.append_once("sv", batch.slice(0, 3), app_id="other", version=1) is not None
    assert store.committed_version("sv", "collector") == 1
    assert store.committed_version("sv", "nobody") is None
    assert store.read("sv").num_rows == 13


def test_maintain_compacts_and_keeps_content(tmp_path):
    store = DeltaStore(str(tmp_path))
    data = values_for(1)
    for i in range(0, data.num_rows, 5):
        store.append_once("sv", data.slice(i, 5), app_id="w", version=i + 1)
    before = store.info("sv")
    result = store.maintain("sv", retention_hours=0)
    after = store.info("sv")
    assert before.num_files > 1 and after.num_files == 1
    assert result["files_removed"] == before.num_files and result["files_vacuumed"] >= before.num_files
    assert content(store, "sv").equals(sort_values(data.select(VALUE_SCHEMA.names)))


def test_missing_table_is_one_clear_error(tmp_path):
    with pytest.raises(StorageError, match="does not exist.*materialise it first"):
        DeltaStore(str(tmp_path)).table("nope")


def test_repr_hides_storage_options(tmp_path):
    store = DeltaStore("s3://bucket/x", {"AWS_SECRET_ACCESS_KEY": "hunter2"})
    assert "hunter2" not in repr(store)
