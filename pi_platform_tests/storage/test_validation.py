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


def _unique_rejects(data: pa.Table) -> list[str]:
    split = split_valid(data, schemas.recorded_values(START, END), time_column="timestamp")
    assert split.valid.num_rows + split.rejects.num_rows == data.num_rows
    return split.rejects["reason"].to_pylist()


def test_ordered_chunks_skip_the_hashing_check_but_duplicates_anywhere_are_caught():
    """Rows strictly ascending in (web_id run, timestamp, position) are unique by construction, so pandera's
    hashing check is skipped for them; a duplicate next to its twin, or a tag's key reappearing after another
    tag's rows, breaks the order and still gets the full check."""
    from pi_platform.storage.validation import _without_proven_unique

    schema = schemas.recorded_values(START, END)
    data = values_for(1)
    assert _without_proven_unique(data, schema).unique is None
    assert schema.unique == ["web_id", "timestamp", "position"]  # the shared schema is not touched

    adjacent = pa.concat_tables([data.slice(0, 11), data.slice(10)])
    w0 = data.filter(pc.equal(data["web_id"], "W0"))
    w1 = data.filter(pc.equal(data["web_id"], "W1"))
    reappearing = pa.concat_tables([w0.slice(1), w1, w0.slice(5, 1)])  # W0's row 5 again, after all of W1
    shifted_back = pa.concat_tables([w0.slice(0, 6), w0.slice(3, 1), w1])  # ascending except one step back in time
    for data, duplicates in ((adjacent, 1), (reappearing, 1), (shifted_back, 1)):
        assert _without_proven_unique(data, schema).unique == schema.unique
        reasons = _unique_rejects(data)
        assert len(reasons) == duplicates and "uniqueness" in reasons[0], reasons
