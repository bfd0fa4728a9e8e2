"""The sink's commit modes on a real Delta table: append, merge of changed late rows, skip of a replayed batch."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from streaming_helpers import sink_rows

from pi_platform.storage import DeltaStore
from pi_platform.streaming.sink import StreamSink


def test_changed_late_rows_are_merged_identical_ones_dropped_and_replays_skipped(tmp_path):
    sink = StreamSink(DeltaStore(str(tmp_path)), app_id="collector")
    first = sink.commit(sink_rows([(0, 1.0, False), (1, 2.0, False)]), version=10)
    assert first.mode == "append" and first.rows == 2

    # A correction of t=1 and an identical re-read of t=0, both possibly already stored, plus a fresh t=2.
    late = sink_rows([(0, 1.0, False), (1, 2.5, True), (2, 3.0, False)])
    second = sink.commit(late, version=20, may_exist=np.array([True, True, False]))
    assert second.mode == "merge"

    stored = DeltaTable(str(tmp_path / "stream_values")).to_pyarrow_table().sort_by("timestamp")
    assert stored["value"].to_pylist() == [1.0, 2.5, 3.0]  # corrected in place, nothing doubled
    assert stored["substituted"].to_pylist() == [False, True, False]
    history = DeltaTable(str(tmp_path / "stream_values")).history()
    assert any(h.get("pi_platform.mode") == "merge" for h in history)

    replay = sink.commit(late, version=20, may_exist=np.array([True, True, False]))  # after a crash
    assert replay.mode == "skipped"
    assert DeltaTable(str(tmp_path / "stream_values")).to_pyarrow_table().num_rows == 3
    assert sink.committed_offset() == 20


def test_a_sink_that_keeps_its_table_open_sees_what_other_writers_committed(tmp_path):
    """The sink loads the table once and then reads only new log entries: a batch another process committed under
    the same app id (a collector that restarted while this one still ran) must still be skipped, and a file
    rewrite by another writer (compaction, another shard's merge) must not make a re-read look new."""
    store = DeltaStore(str(tmp_path))
    sink = StreamSink(store, app_id="collector")
    sink.commit(sink_rows([(0, 1.0, False), (1, 2.0, False)]), version=10)
    sink.commit(sink_rows([(2, 3.0, False)], web_id="W2"), version=11)  # a second file

    other = StreamSink(DeltaStore(str(tmp_path)), app_id="collector")
    assert other.commit(sink_rows([(3, 4.0, False)]), version=12).mode == "append"
    assert sink.commit(sink_rows([(3, 4.0, False)]), version=12).mode == "skipped"  # not appended twice
    assert sink.committed_offset() == 12

    StreamSink(store, app_id="shard-2").commit(sink_rows([(4, 5.0, False)], web_id="W3"), version=1)
    assert store.compact("stream_values")["files_removed"] >= 4  # every file this sink had seen is gone

    # An identical re-read of t=0..1 and a correction of t=3: only the correction is written, in place.
    late = sink_rows([(0, 1.0, False), (1, 2.0, False), (3, 4.5, True)])
    assert sink.commit(late, version=13, may_exist=np.array([True, True, True])).mode == "merge"
    stored = DeltaTable(str(tmp_path / "stream_values")).to_pyarrow_table().sort_by([("web_id", "ascending"),
                                                                                     ("timestamp", "ascending")])
    assert list(zip(stored["web_id"].to_pylist(), stored["value"].to_pylist(), strict=True)) == [
        ("W1", 1.0), ("W1", 2.0), ("W1", 4.5), ("W2", 3.0), ("W3", 5.0)]
    assert sink.commit(late, version=13, may_exist=np.array([True, True, True])).mode == "skipped"

    # Delta keeps file statistics of timestamps in milliseconds: a stored value 999 µs past one must still be found
    # (found: an identical re-read writes nothing; missed: it would be merged, or inserted a second time).
    odd = sink_rows([(5, 6.0, False)])
    odd = odd.set_column(2, "timestamp", pc.add(odd["timestamp"], pa.scalar(999, pa.duration("us"))))
    sink.commit(odd, version=14)
    again = sink.commit(odd, version=15, may_exist=np.array([True]))
    assert again.rows == 0
    assert DeltaTable(str(tmp_path / "stream_values")).to_pyarrow_table().num_rows == 6
