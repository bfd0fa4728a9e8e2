"""The sink's commit modes on a real Delta table: append, merge of changed late rows, skip of a replayed batch."""

import numpy as np
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
