"""The sink's commit modes on a real Delta table: append, merge of changed late rows, skip of a replayed batch."""

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from pi_platform.storage import DeltaStore
from pi_platform.streaming.messages import STREAM_SCHEMA
from pi_platform.streaming.sink import StreamSink

T0 = datetime(2024, 3, 3, 12, 0, tzinfo=timezone.utc)


def _rows(values: list[tuple[int, float, bool]]) -> pa.Table:
    """Rows of stream 'W1' at T0 + seconds, position 0, with the given value and Substituted flag."""
    n = len(values)
    return pa.table(
        {
            "web_id": ["W1"] * n,
            "name": ["TAG1"] * n,
            "timestamp": pa.array([T0.timestamp() * 1e6 + s * 1e6 for s, _, _ in values]).cast(pa.int64()).cast(
                pa.timestamp("us", tz="UTC")),
            "position": pa.array([0] * n, pa.int32()),
            "value": [v for _, v, _ in values],
            "value_str": pa.nulls(n, pa.string()),
            "digital_state": pa.nulls(n, pa.string()),
            "digital_code": pa.nulls(n, pa.int32()),
            "is_system": [False] * n,
            "good": [True] * n,
            "questionable": [False] * n,
            "substituted": [sub for _, _, sub in values],
            "annotated": [False] * n,
            "units": ["bar"] * n,
            "received_at": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=STREAM_SCHEMA,
    )


def test_changed_late_rows_are_merged_identical_ones_dropped_and_replays_skipped(tmp_path):
    sink = StreamSink(DeltaStore(str(tmp_path)), app_id="collector")
    first = sink.commit(_rows([(0, 1.0, False), (1, 2.0, False)]), version=10)
    assert first.mode == "append" and first.rows == 2

    # A correction of t=1 and an identical re-read of t=0, both possibly already stored, plus a fresh t=2.
    late = _rows([(0, 1.0, False), (1, 2.5, True), (2, 3.0, False)])
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
