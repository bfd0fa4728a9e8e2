"""A streamed range overwrite (`storage.datafiles` + delta-rs' transaction API) on real Delta tables: the same
content and commit semantics as delta-rs' own write, and statistics that never make a reader skip a row."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable

from pi_platform.storage import DeltaStore, datafiles
from pi_platform.storage.tables import RECORDED_VALUES
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.storage.moto import moto_server, s3_client, storage_options
from pi_platform_tests.storage.test_store import DAY0, content, day_slice, values_for

END = DAY0 + timedelta(days=3)


def streamed(table: pa.Table, chunk: int = 5) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, iter(table.to_batches(max_chunksize=chunk)))


def overwrite(store: DeltaStore, table: pa.Table, start, end):
    return store.overwrite_range("rv", streamed(table), partition_column="event_date", start=start, end=end)


def with_edge_values(table: pa.Table) -> pa.Table:
    """Rows whose statistics are easy to get wrong: a sub-millisecond time at the end, a NaN, a digital state."""
    rows = table.to_pylist()
    rows[-1]["timestamp"] = rows[-1]["timestamp"] + timedelta(microseconds=123)
    rows[1]["value"] = float("nan")
    rows[2].update(value=None, digital_state="Shutdown", digital_code=0, is_system=True, good=False)
    return pa.Table.from_pylist(rows, schema=RECORDED_VALUES.schema)


@pytest.fixture
def small_files(monkeypatch):
    """Files and row groups of a few rows, so a small table spans several of each."""
    monkeypatch.setattr(datafiles, "_ROW_GROUP_ROWS", 16)
    monkeypatch.setattr(datafiles, "_FILE_ROWS", 40)


def test_streamed_overwrite_is_one_commit_and_replaces_only_its_days(tmp_path, small_files):
    store = DeltaStore(str(tmp_path))
    data = values_for(4, tags=3)  # rows ordered by tag, so the days interleave in the stream
    overwrite(store, day_slice(data, DAY0, DAY0 + timedelta(days=4)), DAY0, DAY0 + timedelta(days=4))
    changed = data.set_column(data.schema.get_field_index("value"), "value", pc.negate(data["value"]))
    info = overwrite(store, day_slice(changed, DAY0 + timedelta(days=1), END), DAY0 + timedelta(days=1), END)
    assert info.version == 1 and info.num_files > 4  # several files per day: rolled at _FILE_ROWS
    expected = pa.concat_tables([day_slice(data, DAY0, DAY0 + timedelta(days=1)),
                                 day_slice(changed, DAY0 + timedelta(days=1), END),
                                 day_slice(data, END, END + timedelta(days=1))])
    assert content(store, "rv").equals(sort_values(expected.select(VALUE_SCHEMA.names)))
    overwrite(store, day_slice(data, DAY0, END).slice(0, 0), DAY0, END)  # an empty stream deletes the range
    assert sorted(set(store.read("rv")["event_date"].to_pylist())) == [END]


def test_statistics_are_true_bounds_of_each_file(tmp_path, small_files):
    store = DeltaStore(str(tmp_path))
    data = with_edge_values(values_for(2, tags=2))
    overwrite(store, data, DAY0, DAY0 + timedelta(days=2))
    log = Path(tmp_path, "rv", "_delta_log", "00000000000000000000.json").read_text().splitlines()
    adds = [json.loads(line)["add"] for line in log if '"add"' in line]
    assert sum(json.loads(a["stats"])["numRecords"] for a in adds) == data.num_rows
    for add in adds:
        stats, rows = json.loads(add["stats"]), ds.dataset(str(tmp_path / "rv" / add["path"])).to_table()
        assert stats["numRecords"] == rows.num_rows
        for name in rows.column_names:
            assert stats["nullCount"][name] == rows[name].null_count
            valid = rows[name].filter(pc.invert(pc.is_nan(rows[name]))) if name == "value" else rows[name]
            low, high = pc.min_max(valid)["min"].as_py(), pc.min_max(valid)["max"].as_py()
            if low is None:
                assert name not in stats["minValues"]
                continue
            if isinstance(low, datetime):
                stated = [datetime.fromisoformat(stats[k][name].replace("Z", "+00:00")) for k in ("minValues", "maxValues")]
                assert stated[0] <= low and high <= stated[1] and stated[1] - high < timedelta(milliseconds=1)
            else:
                assert (stats["minValues"][name], stats["maxValues"][name]) == (low, high)


def test_filtered_reads_skip_no_row(tmp_path, small_files):
    store = DeltaStore(str(tmp_path))
    data = with_edge_values(values_for(2, tags=3))
    overwrite(store, data, DAY0, DAY0 + timedelta(days=2))
    last = data["timestamp"][-1]  # the sub-millisecond maximum
    dataset = DeltaTable(str(tmp_path / "rv")).to_pyarrow_dataset()
    for condition in (pc.field("timestamp") >= last, pc.field("web_id") == "W1",
                      (pc.field("timestamp") > pa.scalar(datetime(2024, 3, 1, 12, tzinfo=timezone.utc)))
                      & (pc.field("web_id") == "W2"), pc.field("value") > 30.0):
        assert dataset.to_table(filter=condition).num_rows == data.filter(condition).num_rows > 0


def test_a_failing_stream_commits_nothing_and_leaves_no_file(tmp_path):
    store = DeltaStore(str(tmp_path))
    data = values_for(2)
    overwrite(store, data, DAY0, DAY0 + timedelta(days=2))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))

    def failing():
        yield from data.to_batches(max_chunksize=5)[:3]
        raise ConnectionError("PI went away")

    with pytest.raises(ConnectionError, match="PI went away"):
        store.overwrite_range("rv", pa.RecordBatchReader.from_batches(data.schema, failing()),
                              partition_column="event_date", start=DAY0, end=DAY0 + timedelta(days=2))
    with pytest.raises(ValueError, match="outside the range"):
        overwrite(store, data, DAY0, DAY0 + timedelta(days=1))
    assert store.info("rv").version == 0
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet")) == before
    assert content(store, "rv").equals(sort_values(data.select(VALUE_SCHEMA.names)))


def test_streamed_overwrite_on_s3():
    with moto_server() as endpoint:
        s3_client(endpoint).create_bucket(Bucket="lake")
        store = DeltaStore("s3://lake/pi", storage_options(endpoint))
        data = values_for(2)
        overwrite(store, data, DAY0, DAY0 + timedelta(days=2))
        overwrite(store, day_slice(data, DAY0, DAY0 + timedelta(days=1)), DAY0, DAY0 + timedelta(days=1))
        reopened = DeltaStore("s3://lake/pi", storage_options(endpoint))
        assert reopened.info("rv").version == 1
        assert content(reopened, "rv").equals(sort_values(data.select(VALUE_SCHEMA.names)))
