"""Regression: files a MERGE of PI corrections rewrote (the sink's, before it rewrote files itself) hold `string_view` columns, which a plain filtered
Arrow scan of the Delta table cannot compare with a string filter (`ArrowNotImplementedError: 'equal' ... (string,
string_view)`); the feed's snapshot (its replay) and its live reads of such commits must still answer, with a time
filter and with a tag filter, and equal the table."""

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import T0, Follower, canonical, last_per_key, since_rows, wait_for
from deltalake import DeltaTable

from pi_platform.feed import Feed
from pi_platform.feed.commits import snapshot
from pi_platform.storage.scan import scan_table
from pi_platform.streaming.messages import STREAM_SCHEMA

SINCE = T0 + timedelta(minutes=5)


def _minutes(a: int, b: int) -> tuple:
    return T0 + timedelta(minutes=a), T0 + timedelta(minutes=b)


def _merge_corrections(lake, rows: pa.Table, every: int) -> tuple[int, pa.Table]:
    """PI's corrections of every `every`-th row MERGEd on the key, as the sink committed them before it rewrote the
    files holding them itself: tables written then still hold such files."""
    picked = rows.take(pa.array(np.arange(0, rows.num_rows, every)))
    value = pc.add(pc.fill_null(picked["value"], 0.0), 1000.0)
    corrections = picked.set_column(picked.schema.get_field_index("value"), "value", value).cast(STREAM_SCHEMA)
    lake.store.upsert("stream_values", corrections, keys=["web_id", "timestamp", "position"])
    assert DeltaTable(lake.uri).history(1)[0]["operation"] == "MERGE"
    return lake.version(), corrections


def _viewed_files(lake) -> list[str]:
    return [uri for uri in DeltaTable(lake.uri).file_uris()
            if any(pa.types.is_string_view(f.type) for f in pq.read_schema(uri))]


def _tags(rows: pa.Table) -> tuple[str, str]:
    """One tag by WebID and another by name, as `/feed?tag=` takes them."""
    names = sorted(set(rows["name"].to_pylist()))
    web_id = rows.filter(pc.equal(rows["name"], names[0]))["web_id"][0].as_py()
    return web_id, names[1]


def _of_tags(rows: pa.Table, tags: tuple[str, str]) -> pa.Table:
    keep = pc.or_(pc.is_in(rows["web_id"], pa.array(tags)), pc.is_in(rows["name"], pa.array(tags)))
    return rows.filter(keep)


def test_snapshot_reads_a_table_holding_merge_written_string_view_files(lake):
    lake.commit_window(*_minutes(0, 10))
    version, _ = _merge_corrections(lake, lake.truth(*_minutes(0, 10)), 5)
    lake.commit_window(*_minutes(10, 20))  # and a plain file next to the merged one
    assert _viewed_files(lake), "the MERGE no longer writes string_view files: this regression test tests nothing"
    tags = _tags(lake.table())

    # what a plain filtered scan of the same table does (why storage.scan exists)
    feed = Feed(lake.uri, since=SINCE, tags=tags)
    with pytest.raises(pa.ArrowNotImplementedError, match="string_view"):
        DeltaTable(lake.uri).to_pyarrow_dataset().to_table(filter=feed.filter())

    table = lake.table()
    for filter, truth in ((Feed(lake.uri, since=SINCE).filter(), since_rows(table, SINCE)),
                          (feed.filter(), _of_tags(since_rows(table, SINCE), tags))):
        rows = snapshot(lake.uri, None, lake.version(), filter)
        assert truth.num_rows > 0
        assert canonical(rows).equals(canonical(truth))
    merged = snapshot(lake.uri, None, version, feed.filter())  # the version the MERGE made
    assert canonical(merged).equals(canonical(_of_tags(since_rows(lake.table(version), SINCE), tags)))

    # the shared reader keeps projections and string filters on every file
    web_id = tags[0]
    picked = scan_table(DeltaTable(lake.uri), filter=ds.field("web_id") == web_id, columns=["web_id", "timestamp"])
    assert picked.column_names == ["web_id", "timestamp"]
    assert picked.num_rows == table.filter(pc.equal(table["web_id"], web_id)).num_rows > 0


def test_the_feed_replays_and_follows_merge_written_files_with_time_and_tag_filters(lake):
    lake.commit_window(*_minutes(0, 10))
    _merge_corrections(lake, lake.truth(*_minutes(0, 10)), 5)
    assert _viewed_files(lake)
    tags = _tags(lake.table())
    follower = Follower(Feed(lake.uri, since=SINCE, tags=tags, poll_interval_s=0.05)).start()
    try:
        wait_for(follower.caught_up, "the replay of a table holding a merged file")
        lake.commit_window(*_minutes(10, 20))
        _, corrections = _merge_corrections(lake, lake.truth(*_minutes(5, 20)), 3)  # live: merged files again
        wait_for(lambda: follower.reached(lake.version()), "the live MERGE")
    finally:
        follower.stop()
    assert follower.error is None
    delivered = follower.rows()
    truth = _of_tags(since_rows(lake.table(), SINCE), tags)
    assert truth.num_rows > 0 and _of_tags(since_rows(corrections, SINCE), tags).num_rows > 0
    assert pc.min(delivered["timestamp"]).as_py() >= SINCE
    assert canonical(last_per_key(delivered)).equals(canonical(truth))
