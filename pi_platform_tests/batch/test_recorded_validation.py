"""The extraction validates the client's chunks a few at a time (`recorded.validated`): grouping them must store
exactly what PI holds, however a tag's values are spread over chunks (pages, windows, URL groups)."""

from datetime import timedelta

import pyarrow as pa
import pytest

from pi_platform.batch import recorded, recorded_processes
from pi_platform.batch.recorded import extract_recorded
from pi_platform.batch.window import DayWindow
from pi_platform.client import PIWebAPIConfig
from pi_platform.storage import DeltaStore, read_quarantine
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY, NOW


def test_grouped_chunks_of_two_days_store_the_plant_exactly(make_simulator, tmp_path, monkeypatch: pytest.MonkeyPatch):
    simulator = make_simulator(n_tags=12, now=NOW, edge_tags=True, faults={"value_error_rate": 0.002})
    window = DayWindow(DAY, DAY + timedelta(days=2))
    # Small pages and URLs: each tag's two days come in several chunks (one window a day, pages of 1,000),
    # mixed with other tags' chunks, so groups must close whenever a tag comes back.
    config = PIWebAPIConfig(url=simulator.base_url, max_requests_per_second=None, page_size=1000, max_url_length=400)
    calls: list[int] = []
    validate = recorded.split_valid

    def counted(table, schema, **options):
        calls.append(table.num_rows)
        return validate(table, schema, **options)

    monkeypatch.setattr(recorded, "split_valid", counted)
    chunks = 0
    read = recorded_processes.read_chunks

    def counting(*args):
        nonlocal chunks
        for batch in read(*args):
            chunks += 1
            yield batch

    monkeypatch.setattr(recorded_processes, "read_chunks", counting)
    store = DeltaStore(str(tmp_path / "lake"))
    extracted = extract_recorded(config, store, [p.web_id for p in simulator.plant.points], window, run_id="grouped")

    rows = store.read_range("recorded_values", "event_date", window.first, window.end)
    stored = sort_values(rows.select(VALUE_SCHEMA.names).cast(VALUE_SCHEMA))
    quarantined = read_quarantine(store, table_name="recorded_values", start=window.first, end=window.end)
    expected = truth.recorded(simulator.plant, window.start_time, window.end_time)
    assert stored.num_rows + quarantined.num_rows == expected.num_rows  # nothing lost, nothing doubled
    assert quarantined.num_rows == extracted.quarantined > 0
    assert all(r.startswith("PI reported per-value Errors") for r in quarantined["reason"].to_pylist())  # no duplicates
    keys = ["web_id", "timestamp", "position"]
    assert stored.equals(sort_values(expected.join(stored.select(keys), keys, join_type="left semi").select(VALUE_SCHEMA.names).cast(VALUE_SCHEMA)))
    assert 1 < len(calls) < chunks  # grouped, yet split wherever a tag came back


def test_values_at_the_window_end_leave_a_chunk_and_nothing_else_does():
    """`in_window` keeps zero-copy slices around the rows stamped at the window's end (the next day's first
    instant): exactly those rows go, in order, whichever rows of the chunk they are; a chunk without any is
    passed on as it is, and a null time is left for the schema to quarantine."""
    window = DayWindow(DAY, DAY + timedelta(days=1))
    end, inside = window.end_time, window.end_time - timedelta(seconds=1)
    stamps = [end, inside, end, end, inside, inside, None, end]
    table = pa.table({"timestamp": pa.array(stamps, VALUE_SCHEMA.field("timestamp").type), "row": range(len(stamps))})

    kept = recorded.in_window(table, window)

    assert kept["row"].to_pylist() == [1, 4, 5, 6]
    assert kept["timestamp"].null_count == 1
    untouched = table.filter(pa.array([s != end for s in stamps]))
    assert recorded.in_window(untouched, window) is untouched
    assert recorded.in_window(table.slice(0, 0), window).num_rows == 0
