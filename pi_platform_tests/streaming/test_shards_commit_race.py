"""A shard's commit that loses the optimistic race to another writer (the other shard's commit and a compaction
land between its read of the table and its merge) is retried with a log line, and stays exactly once."""

import logging

import numpy as np
from deltalake import DeltaTable
from streaming_helpers import sink_rows

from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import STREAM_VALUES
from pi_platform.streaming.sink import StreamSink


class LateSink(StreamSink):
    """Reads the table once before the other writers commit: its first attempt works on that stale snapshot."""

    def __init__(self, store: DeltaStore, app_id: str) -> None:
        super().__init__(store, app_id)
        self.stale = store.table(STREAM_VALUES.name)

    def _delta(self):  # noqa: ANN202 - StreamSink's
        stale, self.stale = self.stale, None
        return stale or super()._delta()


def test_commit_that_lost_a_race_is_retried_logged_and_not_doubled(tmp_path, caplog):
    store = DeltaStore(str(tmp_path))
    first = StreamSink(store, "pi-platform-stream:c-shard-1-of-2")
    first.commit(sink_rows([(0, 1.0, False), (1, 2.0, False)], web_id="W1"), version=10)
    late = LateSink(store, "pi-platform-stream:c-shard-1-of-2")

    other = StreamSink(store, "pi-platform-stream:c-shard-2-of-2")  # the other shard commits, then compacts
    other.commit(sink_rows([(0, 5.0, False)], web_id="W2"), version=7)
    store.compact(STREAM_VALUES.name)

    correction = sink_rows([(1, 2.5, True), (2, 3.0, False)], web_id="W1")
    with caplog.at_level(logging.WARNING, logger="pi_platform.storage.conflicts"):
        commit = late.commit(correction, version=20, may_exist=np.array([True, False]))
    assert commit.mode == "merge"
    retries = [r.getMessage() for r in caplog.records if "lost a race" in r.getMessage()]
    assert len(retries) == 1 and "batch 20 of pi-platform-stream:c-shard-1-of-2" in retries[0]

    stored = DeltaTable(str(tmp_path / STREAM_VALUES.name)).to_pyarrow_table().sort_by([("web_id", "ascending"),
                                                                                        ("timestamp", "ascending")])
    assert list(zip(stored["web_id"].to_pylist(), stored["value"].to_pylist(), strict=True)) == [
        ("W1", 1.0), ("W1", 2.5), ("W1", 3.0), ("W2", 5.0)]  # both shards' rows, the correction once
    table = DeltaTable(str(tmp_path / STREAM_VALUES.name))
    assert table.transaction_version("pi-platform-stream:c-shard-1-of-2") == 20
    assert table.transaction_version("pi-platform-stream:c-shard-2-of-2") == 7
    assert late.commit(correction, version=20, may_exist=np.array([True, False])).mode == "skipped"  # replayed
