"""The feed against the table it follows, with commits driven through the real sink while it runs: replay -> live
with no gap or duplicate across appends, a compaction (dataChange=false, must not re-emit) and a MERGE of PI
corrections (must emit only the corrected rows); resumption from a Position; deletes refused or ignored."""

import asyncio
import threading
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from conftest import T0, Follower, canonical, last_per_key, since_rows, wait_for
from deltalake import DeltaTable

from pi_platform.feed import Feed, FeedError, Position, follow, follow_sync
from pi_platform.feed.commits import CommitLog
from pi_platform.streaming.messages import STREAM_SCHEMA

SINCE = T0 + timedelta(minutes=5)


def _minutes(a: int, b: int) -> tuple:
    return T0 + timedelta(minutes=a), T0 + timedelta(minutes=b)


def _corrections(rows: pa.Table, every: int) -> pa.Table:
    """Every `every`-th row with a new value and PI's Substituted flag, as a late read would bring it."""
    picked = rows.take(pa.array(np.arange(0, rows.num_rows, every)))
    value = pc.add(pc.fill_null(picked["value"], 0.0), 1000.0)
    picked = picked.set_column(picked.schema.get_field_index("value"), "value", value)
    return picked.set_column(picked.schema.get_field_index("substituted"), "substituted",
                             pa.array([True] * picked.num_rows)).cast(STREAM_SCHEMA)


def test_no_gap_no_duplicate_across_appends_compaction_and_corrections(lake):
    lake.commit_window(*_minutes(0, 10))
    lake.commit_window(*_minutes(10, 20))
    follower = Follower(Feed(lake.uri, since=SINCE, poll_interval_s=0.05, chunk_rows=500)).start()
    try:
        wait_for(follower.caught_up, "the replay")
        lake.commit_window(*_minutes(20, 30))
        compaction = lake.store.compact("stream_values")["version"]
        # PI corrected values on both sides of --since: only those at or after it may be delivered
        old = since_rows(lake.table(), T0).filter(pc.less(lake.table()["timestamp"], pa.scalar(SINCE)))
        corrections = pa.concat_tables([_corrections(old, 7), _corrections(lake.truth(*_minutes(20, 30)), 5)])
        merge = lake.commit(corrections, may_exist=np.ones(corrections.num_rows, dtype=bool))
        lake.commit_window(*_minutes(30, 40))
        wait_for(lambda: follower.reached(lake.version()), "the last commit")
    finally:
        follower.stop()
    assert follower.error is None

    log = CommitLog(lake.uri)
    assert log.files(compaction).added == log.files(compaction).removed == ()  # no data change
    assert log.files(merge).removed  # the corrections replaced rows in the files holding them
    delivered = follower.rows()
    table = since_rows(lake.table(), SINCE)
    corrected_since = since_rows(corrections, SINCE).num_rows
    assert corrected_since > 0 and table.num_rows > 1000
    # every row once, plus each correction once more with its new content; nothing before --since
    assert delivered.num_rows == table.num_rows + corrected_since
    assert pc.min(delivered["timestamp"]).as_py() >= SINCE
    assert canonical(last_per_key(delivered)).equals(canonical(table))
    kinds = [b.kind for b in follower.batches]
    assert kinds.count("caught_up") == 1 and "replay" in kinds and "live" in kinds


def test_a_position_resumes_exactly_after_the_rows_already_taken(lake):
    lake.commit_window(*_minutes(0, 10))
    lake.commit_window(*_minutes(10, 20))
    lake.commit_window(*_minutes(20, 30))
    last = lake.version()

    def run(start: Position | None) -> list:
        follower = Follower(Feed(lake.uri, since=SINCE, start=start, poll_interval_s=0.05, chunk_rows=97)).start()
        try:
            wait_for(lambda: follower.reached(last), "the last commit")
        finally:
            follower.stop()
        assert follower.error is None
        return follower.batches

    whole = run(Position(1, 0, True))  # replay of version 1, then version 2 live
    rows = pa.concat_tables([b.rows for b in whole])
    for cut in (whole[3], next(b for b in whole if b.kind == "live" and b.position.offset > 97)):
        resumed = pa.concat_tables([b.rows for b in run(cut.position)])
        taken = sum(b.rows.num_rows for b in whole[:whole.index(cut) + 1])
        assert resumed.to_pylist() == rows.slice(taken).to_pylist()


def test_a_delete_inside_the_window_is_refused_and_one_before_it_ignored(lake):
    lake.commit_window(*_minutes(0, 10))
    follower = Follower(Feed(lake.uri, since=SINCE, poll_interval_s=0.05)).start()
    try:
        wait_for(follower.caught_up, "the replay")
        DeltaTable(lake.uri).delete(f"timestamp < '{(T0 + timedelta(minutes=1)).isoformat()}'")  # a retention purge
        lake.commit_window(*_minutes(10, 11))
        wait_for(lambda: follower.reached(lake.version()), "the commits after a retention delete")
        assert follower.error is None
        DeltaTable(lake.uri).delete(f"timestamp >= '{(T0 + timedelta(minutes=8)).isoformat()}'")
        wait_for(lambda: follower.error is not None, "the feed to refuse the delete")
    finally:
        follower.stop()
    assert isinstance(follower.error, FeedError)
    assert "deleted" in str(follower.error) and "--since" in str(follower.error)


def test_a_feed_started_before_the_first_commit_delivers_it_projected(lake):
    follower = Follower(Feed(lake.uri, since=SINCE, columns=["web_id", "timestamp", "digital_state"],
                             poll_interval_s=0.05)).start()
    try:
        wait_for(follower.caught_up, "the (empty) replay")
        version = lake.commit_window(*_minutes(0, 10))
        wait_for(lambda: follower.reached(version), "the first commit")
    finally:
        follower.stop()
    assert follower.error is None
    delivered = pa.concat_tables([b.rows for b in follower.batches])
    assert delivered.column_names == ["web_id", "timestamp", "digital_state"]
    truth = since_rows(lake.table(), SINCE).select(delivered.column_names)
    assert truth.num_rows > 0
    assert sorted(delivered.to_pylist(), key=str) == sorted(truth.to_pylist(), key=str)


def test_follow_and_follow_sync_yield_the_rows_since(lake):
    lake.commit_window(*_minutes(0, 10))
    truth = canonical(since_rows(lake.table(), SINCE))

    stop = threading.Event()
    synced = []
    for rows in follow_sync(lake.uri, since=SINCE, stop=stop, poll_interval_s=0.05):
        synced.append(rows)
        if sum(r.num_rows for r in synced) >= truth.num_rows:
            stop.set()

    async def collect() -> list[pa.Table]:
        got = []
        async for rows in follow(lake.uri, since=SINCE, poll_interval_s=0.05):
            got.append(rows)
            if sum(r.num_rows for r in got) >= truth.num_rows:
                return got
        return got

    for tables in (synced, asyncio.run(asyncio.wait_for(collect(), 60))):
        assert canonical(pa.concat_tables(tables)).to_pylist() == truth.to_pylist()
