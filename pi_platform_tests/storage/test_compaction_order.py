"""Ordered compaction of `stream_values` (`storage/compaction.py`): settled and recent files merge per tier, only
small ones, into files sorted by time; no row changes, the commits carry no data change, exactly-once state survives;
a second run has nothing to do; a sink rewrite that commits first is never undone or doubled."""

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from pi_platform.feed.commits import CommitLog
from pi_platform.storage import DeltaStore
from pi_platform.storage.compaction import compact_in_order
from pi_platform.storage.tables import STREAM_VALUES
from pi_platform.streaming.messages import STREAM_SCHEMA
from pi_platform.streaming.sink import StreamSink
from pi_platform.value_columns import sort_values

APP = "pi-platform-stream:collector"
NOW_US = 1_714_564_800_000_000  # 2024-05-01T12:00Z: the compaction's clock
SETTLED_S = 600.0
SETTLED_BEFORE_US = NOW_US - int(SETTLED_S * 1e6)
# Small tiers keep the tables small: a file is small below 500 rows (recent) or 2,000 rows (settled).
TIERS = {"settled_s": SETTLED_S, "recent_rows": 1000, "settled_rows": 4000}
SECOND = 1_000_000


def _batch(web_id: str, start_us: int, n: int, step_us: int, first_value: float = 0.0) -> pa.Table:
    ts = pa.array(np.arange(start_us, start_us + n * step_us, step_us, dtype=np.int64)).cast(
        pa.timestamp("us", tz="UTC"))
    return pa.table({
        "web_id": [web_id] * n, "name": [f"TAG.{web_id}"] * n, "timestamp": ts,
        "position": pa.array([0] * n, pa.int32()), "value": first_value + np.arange(n, dtype=np.float64),
        "value_str": pa.nulls(n, pa.string()), "digital_state": pa.nulls(n, pa.string()),
        "digital_code": pa.nulls(n, pa.int32()), "is_system": [False] * n, "good": [True] * n,
        "questionable": [False] * n, "substituted": [False] * n, "annotated": [False] * n, "units": ["m"] * n,
        "received_at": ts,
    }, schema=STREAM_SCHEMA)


def _table_with_tiers(tmp_path: Path) -> str:
    """A table of 13 files, one sink commit each (the sink writes a micro-batch this small as one file), settled
    and recent, small and not; returns its URI."""
    sink = StreamSink(DeltaStore(str(tmp_path / "lake")), APP)
    old = NOW_US - 7200 * SECOND
    batches = [
        _batch("W3", old - 3000 * SECOND, 2500, SECOND),  # settled, large enough already
        # settled and small: pairs of streams over the same minutes, so the files overlap in time and only a sort
        # puts the merged rows in time order
        *(_batch(w, old + k * 600 * SECOND + (SECOND // 2 if w == "W2" else 0), 300, 2 * SECOND, 10.0 * k)
          for k in range(3) for w in ("W1", "W2")),
        _batch("W3", NOW_US - 540 * SECOND, 600, 100_000),  # recent, large enough already
        # recent and small, one after another in time
        *(_batch("W1", NOW_US - 300 * SECOND + k * 40 * SECOND, 300, 100_000, 100.0 * k) for k in range(5)),
    ]
    for version, batch in enumerate(batches, start=1):
        sink.commit(batch, version=version)
    return sink.uri


def _files(uri: str) -> dict[str, tuple[int, int, int]]:
    """path -> (rows, first µs, last µs) of every live file."""
    actions = pa.table(DeltaTable(uri).get_add_actions(flatten=True))
    first = actions["min.timestamp"].cast(pa.int64()).to_pylist()
    last = actions["max.timestamp"].cast(pa.int64()).to_pylist()
    return {p: (n, lo, hi) for p, n, lo, hi in zip(actions["path"].to_pylist(), actions["num_records"].to_pylist(),
                                                   first, last, strict=True)}


def _log_actions(uri: str, version: int) -> list[dict]:
    lines = (Path(uri) / "_delta_log" / f"{version:020d}.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


def _rows(uri: str) -> pa.Table:
    return sort_values(DeltaTable(uri).to_pyarrow_table())


def test_tiers_merge_small_neighbours_in_time_order_without_changing_a_row(tmp_path):
    uri = _table_with_tiers(tmp_path)
    before_files, before_rows, v0 = _files(uri), _rows(uri), DeltaTable(uri).version()
    assert len(before_files) == 13

    outcome = compact_in_order(lambda: DeltaTable(uri), uri, None, "timestamp", now_us=NOW_US, **TIERS)

    after_files = _files(uri)
    removed = set(before_files) - set(after_files)
    added = {p: after_files[p] for p in set(after_files) - set(before_files)}
    kept = set(before_files) & set(after_files)
    assert outcome == {"files_removed": len(removed), "files_added": len(added)} == {"files_removed": 11,
                                                                                     "files_added": 3}
    assert sorted(before_files[p][0] for p in kept) == [600, 2500]  # at least half their tier: left alone
    settled = sorted((f for f in added.values() if f[2] < SETTLED_BEFORE_US), key=lambda f: f[1])
    recent = sorted((f for f in added.values() if f[2] >= SETTLED_BEFORE_US), key=lambda f: f[1])
    assert [f[0] for f in settled] == [1800]  # the six small settled files in one
    assert [f[0] for f in recent] == [900, 600]  # up to 1,000 rows each: 3 + 2 of the five small recent files
    newest_settled_input = max(before_files[p][2] for p in removed if before_files[p][2] < SETTLED_BEFORE_US)
    assert all(f[1] > newest_settled_input for f in recent)  # recent files never took a settled row
    assert recent[0][2] < recent[1][1]  # no overlap in time within a tier
    assert _rows(uri).equals(before_rows)

    table_root = Path(uri)
    for path in added:
        stamps = pq.read_table(table_root / path, columns=["timestamp"])["timestamp"].cast(pa.int64()).to_numpy()
        assert np.all(np.diff(stamps) >= 0), f"{path} is not in time order"

    dt = DeltaTable(uri)
    assert dt.version() == v0 + 3  # one commit per merged group
    log = CommitLog(uri)
    history = {h["version"]: h for h in dt.history()}
    for version in range(v0 + 1, v0 + 4):
        assert log.files(version).added == log.files(version).removed == ()  # nothing with dataChange=true
        actions = _log_actions(uri, version)
        assert any("add" in a for a in actions) and any("remove" in a for a in actions)
        assert history[version].get("pi_platform.mode") == "compaction"
    assert dt.transaction_version(APP) == 13  # the sink's exactly-once state survives


def test_a_second_run_has_nothing_to_merge(tmp_path):
    uri = _table_with_tiers(tmp_path)
    first = compact_in_order(lambda: DeltaTable(uri), uri, None, "timestamp", now_us=NOW_US, **TIERS)
    assert first["files_removed"] > 0
    version, files, rows = DeltaTable(uri).version(), _files(uri), _rows(uri)

    again = compact_in_order(lambda: DeltaTable(uri), uri, None, "timestamp", now_us=NOW_US, **TIERS)
    assert again == {"files_removed": 0, "files_added": 0}
    assert DeltaTable(uri).version() == version and _files(uri) == files and _rows(uri).equals(rows)


def test_store_compact_dispatches_stream_values_to_ordered_compaction(tmp_path):
    """`DeltaStore.compact` of `stream_values` (ordered by timestamp) compacts in order with the default tiers:
    old micro-batch files are settled, so they all merge into one file, once."""
    store = DeltaStore(str(tmp_path / "lake"))
    sink = StreamSink(store, APP)
    for k in range(6):
        sink.commit(_batch("W1", NOW_US - 86_400 * SECOND + k * 100 * SECOND, 100, SECOND), version=k + 1)
    uri, rows = sink.uri, _rows(sink.uri)

    outcome = store.compact(STREAM_VALUES.name)
    assert (outcome["files_removed"], outcome["files_added"]) == (6, 1)
    assert DeltaTable(uri).history(1)[0].get("pi_platform.mode") == "compaction"
    assert _rows(uri).equals(rows)
    again = store.compact(STREAM_VALUES.name)
    assert (again["files_removed"], again["files_added"], again["version"]) == (0, 0, outcome["version"])


@pytest.mark.parametrize("race_at", [1, 2], ids=["after-planning", "before-committing"])
def test_sink_rewrite_committed_first_is_neither_undone_nor_doubled(tmp_path, caplog, race_at):
    """The sink corrects a row in a file of the compaction's group, committing between the compaction's planning
    and its group's check of the live files (`after-planning`), or after that check, while the compaction writes
    its merged file (`before-committing`: only the commit itself can notice)."""
    sink = StreamSink(DeltaStore(str(tmp_path / "lake")), APP)
    batches = [_batch("W1", NOW_US - 240 * SECOND + k * 10 * SECOND, 50, 100_000, 100.0 * k) for k in range(4)]
    for version, batch in enumerate(batches, start=1):
        sink.commit(batch, version=version)
    uri = sink.uri
    original = sort_values(pa.concat_tables(batches))

    target = batches[1].slice(20, 1)  # a row of the second file
    correction = target.set_column(target.schema.get_field_index("value"), "value", pa.array([-1.5])).set_column(
        target.schema.get_field_index("substituted"), "substituted", pa.array([True]))
    loads = 0

    def load() -> DeltaTable:
        nonlocal loads
        loads += 1
        dt = DeltaTable(uri)  # the compaction's view, read before the sink commits
        if loads == race_at:
            assert sink.commit(correction, version=5, may_exist=np.array([True])).mode == "merge"
        return dt

    with caplog.at_level(logging.WARNING, logger="pi_platform.storage.conflicts"):
        skipped = compact_in_order(load, uri, None, "timestamp", now_us=NOW_US)
    assert skipped == {"files_removed": 0, "files_added": 0}
    lost = [r.getMessage() for r in caplog.records if "lost a race" in r.getMessage()]
    assert len(lost) == race_at - 1  # before-committing: delta-rs refused the compaction's commit once

    def check() -> None:
        stored = _rows(uri)
        keys = stored.group_by(["web_id", "timestamp", "position"]).aggregate([("position", "count")])
        assert stored.num_rows == keys.num_rows == original.num_rows  # no doubled key, nothing lost
        at = stored.filter(pc.equal(stored["timestamp"], target["timestamp"][0]))
        assert at["value"].to_pylist() == [-1.5] and at["substituted"].to_pylist() == [True]
        rest = stored.filter(pc.not_equal(stored["timestamp"], target["timestamp"][0]))
        assert rest.equals(original.filter(pc.not_equal(original["timestamp"], target["timestamp"][0])))
        assert DeltaTable(uri).transaction_version(APP) == 5

    check()
    assert loads >= 2
    # the group was skipped, not lost: the next compaction merges the files as they are now
    assert compact_in_order(lambda: DeltaTable(uri), uri, None, "timestamp", now_us=NOW_US)["files_added"] == 1
    check()
    assert len(DeltaTable(uri).file_uris()) == 1


def test_small_files_on_either_side_of_a_large_one_are_not_merged_across_it(tmp_path):
    """Merged files stay narrow in time: two small files with a large one between them (in time) would make a file
    spanning the large one's range, a candidate for every lookup inside it."""
    sink = StreamSink(DeltaStore(str(tmp_path / "lake")), APP)
    start = NOW_US - 3600 * SECOND
    for version, batch in enumerate([_batch("W1", start, 100, SECOND),
                                     _batch("W1", start + 100 * SECOND, 3000, 10_000),
                                     _batch("W1", start + 200 * SECOND, 100, SECOND),
                                     _batch("W1", start + 300 * SECOND, 100, SECOND)], start=1):
        sink.commit(batch, version=version)
    before = _files(sink.uri)
    outcome = compact_in_order(lambda: DeltaTable(sink.uri), sink.uri, None, "timestamp", now_us=NOW_US, **TIERS)
    after = _files(sink.uri)
    assert outcome == {"files_removed": 2, "files_added": 1}  # only the two small files after the large one
    merged = [f for f in after.values() if f not in before.values()]
    assert len(merged) == 1 and merged[0][0] == 200 and merged[0][1] == start + 200 * SECOND
    assert min(before.values(), key=lambda f: f[1]) in after.values()  # the small file before the large one stays


def test_a_compaction_sharing_the_sinks_lock_waits_and_skips_a_group_rewritten_meanwhile(tmp_path, caplog):
    """The collector's own compaction commits under its sink's commit lock: it waits while the sink commits, then
    sees the sink's rewrite and skips the group, so neither loses a commit race (nor logs one)."""
    store = DeltaStore(str(tmp_path / "lake"))
    sink = StreamSink(store, APP)
    batches = [_batch("W1", NOW_US - 240 * SECOND + k * 10 * SECOND, 50, 100_000, 100.0 * k) for k in range(4)]
    for version, batch in enumerate(batches, start=1):
        sink.commit(batch, version=version)
    target = batches[1].slice(20, 1)
    correction = target.set_column(target.schema.get_field_index("value"), "value", pa.array([-1.5]))

    class Gate:
        """The sink's lock, telling the test when the compaction is waiting for it."""

        def __init__(self) -> None:
            self.waiting = threading.Event()

        def __enter__(self) -> None:
            self.waiting.set()
            sink.commit_lock.acquire()

        def __exit__(self, *exc: object) -> None:
            sink.commit_lock.release()

    gate, outcome = Gate(), {}
    sink.commit_lock.acquire()  # the sink is in the middle of a commit
    compaction = threading.Thread(target=lambda: outcome.update(compact_in_order(
        lambda: DeltaTable(sink.uri), sink.uri, None, "timestamp", now_us=NOW_US, lock=gate)))
    with caplog.at_level(logging.WARNING, logger="pi_platform.storage.conflicts"):
        compaction.start()
        assert gate.waiting.wait(30)
        # the commit in hand: another sink object of the same collector writes it (this one's lock is held here)
        assert StreamSink(store, APP).commit(correction, version=5, may_exist=np.array([True])).mode == "merge"
        sink.commit_lock.release()
        compaction.join(30)
    assert outcome == {"files_removed": 0, "files_added": 0}
    assert not [r for r in caplog.records if "lost a race" in r.getMessage()]
    stored = _rows(sink.uri)
    assert stored.num_rows == sum(b.num_rows for b in batches)
    assert stored.filter(pc.equal(stored["value"], -1.5)).num_rows == 1


def test_a_paced_compaction_pauses_between_groups_and_a_halt_leaves_the_rest_for_next_time(tmp_path):
    """The collector's own compaction works only a share of its time (`duty`) beside the live commits, pausing after
    each merged group; a stop (`halt`) ends it in such a pause, with the groups not yet merged left for the next run."""
    uri = _table_with_tiers(tmp_path)
    v0, rows = DeltaTable(uri).version(), _rows(uri)
    halt = threading.Event()

    def halt_after_the_first_group() -> None:
        while DeltaTable(uri).version() == v0:
            threading.Event().wait(0.005)
        halt.set()

    watcher = threading.Thread(target=halt_after_the_first_group)
    watcher.start()
    # a pause of 99 times the group's work: the halt comes in it, or the run would take seconds per group
    outcome = compact_in_order(lambda: DeltaTable(uri), uri, None, "timestamp", now_us=NOW_US, duty=0.01, halt=halt,
                               **TIERS)
    watcher.join()
    assert outcome == {"files_removed": 6, "files_added": 1}  # the settled group only
    assert DeltaTable(uri).version() == v0 + 1 and _rows(uri).equals(rows)

    rest = compact_in_order(lambda: DeltaTable(uri), uri, None, "timestamp", now_us=NOW_US, **TIERS)
    assert rest == {"files_removed": 5, "files_added": 2}  # the recent groups, next time
