"""pandera validation splits bad rows off to quarantine with reasons; good rows are committed untouched."""

from datetime import datetime, timedelta, timezone

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.storage import DeltaStore, read_quarantine, replace_quarantine, split_valid
from pi_platform.storage import schemas
from pi_platform_tests.storage.test_store import DAY0, values_for

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
END = START + timedelta(days=1)


def corrupt(table: pa.Table, row: int, column: str, value) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type))


def test_valid_batch_passes_whole():
    data = values_for(1)
    split = split_valid(data, schemas.recorded_values(START, END), time_column="timestamp")
    assert split.valid.equals(data) and split.rejects.num_rows == 0


def test_bad_rows_are_split_with_reasons_and_raw_json():
    data = values_for(1)
    data = corrupt(data, 3, "value", None)  # no value at all
    data = corrupt(data, 5, "timestamp", END + timedelta(hours=1))  # outside the partition
    data = corrupt(data, 7, "value", float("inf"))
    dup = data.slice(10, 1)
    data = pa.concat_tables([data, dup])  # duplicated key
    split = split_valid(data, schemas.recorded_values(START, END), time_column="timestamp")
    assert split.valid.num_rows == data.num_rows - 4
    assert split.rejects.num_rows == 4
    reasons = split.rejects["reason"].to_pylist()
    assert any("no value" in r for r in reasons)
    assert any("outside" in r for r in reasons)
    assert any("infinite" in r for r in reasons)
    assert any("duplicate" in r or "unique" in r for r in reasons)
    raws = [orjson.loads(r) for r in split.rejects["raw"].to_pylist()]
    assert {r["web_id"] for r in raws} <= {"W0", "W1"}
    # nothing lost: valid + rejected == input
    assert split.valid.num_rows + split.rejects.num_rows == data.num_rows


def test_quarantine_is_replaced_per_table_and_range(tmp_path):
    store = DeltaStore(str(tmp_path))
    data = corrupt(values_for(2), 3, "value", None)
    window = schemas.recorded_values(START, START + timedelta(days=2))
    rejects = split_valid(data, window, time_column="timestamp").rejects
    replace_quarantine(store, rejects, table_name="recorded_values", start=DAY0, end=DAY0 + timedelta(days=2), run_id="r1")
    replace_quarantine(store, rejects, table_name="recorded_values", start=DAY0, end=DAY0 + timedelta(days=2), run_id="r2")
    replace_quarantine(store, rejects.slice(0, 0), table_name="alarms", start=DAY0, end=DAY0 + timedelta(days=2))
    got = read_quarantine(store, table_name="recorded_values", start=DAY0, end=DAY0 + timedelta(days=2))
    assert got.num_rows == 1 and got["run_id"].to_pylist() == ["r2"]
    assert got["event_date"].to_pylist() == [DAY0]
    # a clean rerun clears the day's quarantine
    replace_quarantine(store, rejects.slice(0, 0), table_name="recorded_values", start=DAY0, end=DAY0 + timedelta(days=1))
    assert read_quarantine(store, table_name="recorded_values", start=DAY0, end=DAY0 + timedelta(days=2)).num_rows == 0


def test_rejects_dated_outside_the_range_land_on_its_first_day(tmp_path):
    store = DeltaStore(str(tmp_path))
    data = corrupt(values_for(1), 2, "timestamp", END + timedelta(days=3))
    rejects = split_valid(data, schemas.recorded_values(START, END), time_column="timestamp").rejects
    replace_quarantine(store, rejects, table_name="recorded_values", start=DAY0, end=DAY0 + timedelta(days=1))
    got = read_quarantine(store, table_name="recorded_values", start=DAY0, end=DAY0 + timedelta(days=1))
    assert got["event_date"].to_pylist() == [DAY0]
    assert pc.all(pc.equal(got["table_name"], "recorded_values")).as_py()
