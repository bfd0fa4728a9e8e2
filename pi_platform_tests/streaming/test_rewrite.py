"""The sink's commit path on real Delta tables: fresh rows go to new files, a changed late row replaces its stored row
by rewriting only the file holding it, identical late rows are dropped, and a rewrite that loses the commit race to a
compaction or a blind append ends with every row exactly once."""

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, Schema
from deltalake.transaction import AddAction, create_table_with_add_actions

from pi_platform.feed.commits import CommitLog
from pi_platform.storage import DeltaStore
from pi_platform.storage.datafiles import write_files
from pi_platform.storage.tables import QUARANTINE, STREAM_VALUES
from pi_platform.streaming import rewrite
from pi_platform.streaming.messages import STREAM_SCHEMA
from pi_platform.streaming.sink import StreamSink
from pi_platform.value_columns import sort_values

# Whole seconds an hour ago: old enough for the compaction's settled tier (storage/compaction.py, 10 minutes).
BASE_US = (time.time_ns() // 1000 // 1_000_000 - 3600) * 1_000_000
APP = "pi-platform-stream:collector"
KEY = ["web_id", "timestamp", "position"]


def _rows(spec: list[tuple[str, float, int, float | str]], *, received_s: float = 0.0, substituted: bool = False
          ) -> pa.Table:
    """STREAM_SCHEMA rows from (web_id, seconds after BASE_US, position, value): a float is a number, a str a
    system digital state (is_system, not Good), as PI reports e.g. "I/O Timeout"."""
    n = len(spec)
    state = [v if isinstance(v, str) else None for _, _, _, v in spec]
    system = [s is not None for s in state]
    stamp = pa.array([BASE_US + round(s * 1e6) for _, s, _, _ in spec], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return pa.table({
        "web_id": [w for w, _, _, _ in spec], "name": [f"TAG-{w}" for w, _, _, _ in spec], "timestamp": stamp,
        "position": pa.array([p for _, _, p, _ in spec], pa.int32()),
        "value": [None if isinstance(v, str) else v for _, _, _, v in spec], "value_str": pa.nulls(n, pa.string()),
        "digital_state": state, "digital_code": pa.array([248 if s else None for s in system], pa.int32()),
        "is_system": system, "good": [not s for s in system], "questionable": [False] * n,
        "substituted": [substituted] * n, "annotated": [False] * n, "units": ["bar"] * n,
        "received_at": pa.array([BASE_US + round(received_s * 1e6)] * n, pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
    }, schema=STREAM_SCHEMA)


def _window(start_s: int, seconds: int = 10) -> pa.Table:
    """`seconds` of three streams from BASE_US + start_s: W1 a value a second, W2 a three-value group (same instant,
    positions 0-2) every second, W3 a system state at its second instant."""
    spec: list[tuple[str, float, int, float | str]] = []
    for s in range(start_s, start_s + seconds):
        spec.append(("W1", s, 0, float(s)))
        spec.extend(("W2", s, p, s * 10.0 + p) for p in range(3))
        spec.append(("W3", s, 0, "I/O Timeout" if s == start_s + 1 else -float(s)))
    return _rows(spec, received_s=start_s + seconds)


def _applied(stored: pa.Table, *changes: pa.Table) -> pa.Table:
    """`stored` with each key of `changes` holding the change's row instead (what the table must equal)."""
    for change in changes:
        keys = set(_keys(change))
        stored = pa.concat_tables([stored.filter(pa.array([k not in keys for k in _keys(stored)], pa.bool_())),
                                   change])
    return _canon(stored)


def _keys(table: pa.Table) -> list[tuple]:
    return list(zip(*(table[c].cast(pa.int64()).to_pylist() if c == "timestamp" else table[c].to_pylist()
                      for c in KEY), strict=True))


def _canon(table: pa.Table) -> pa.Table:
    return sort_values(table.select(STREAM_SCHEMA.names).cast(STREAM_SCHEMA))


def _table(root: Path) -> pa.Table:
    return _canon(DeltaTable(str(root / STREAM_VALUES.name)).to_pyarrow_table())


def _doubled(table: pa.Table) -> int:
    return table.num_rows - table.group_by(KEY).aggregate([("position", "count")]).num_rows


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Live data files of stream_values: path -> (min, max) timestamp in µs, from the Delta statistics."""
    actions = pa.table(DeltaTable(str(root / STREAM_VALUES.name)).get_add_actions(flatten=True))
    low, high = (actions[c].cast(pa.int64()).to_pylist() for c in ("min.timestamp", "max.timestamp"))
    return dict(zip(actions["path"].to_pylist(), zip(low, high, strict=True), strict=True))


def _late(rows: pa.Table, late: int) -> np.ndarray:
    """may_exist for `rows` whose last `late` rows may already be stored."""
    return np.arange(rows.num_rows) >= rows.num_rows - late


def _seeded(root: Path, starts: tuple[int, ...] = (0, 100, 200)) -> tuple[StreamSink, pa.Table, list[tuple[str, ...]]]:
    """A table of one commit per window start (distinct time ranges): the sink, the rows, each commit's files."""
    sink = StreamSink(DeltaStore(str(root)), APP)
    rows, files = [], []
    for number, start in enumerate(starts, 1):
        window = _window(start)
        commit = sink.commit(window, version=number)
        assert commit.mode == "append"
        rows.append(window)
        files.append(CommitLog(str(root / STREAM_VALUES.name)).files(commit.delta_version).added)
    return sink, pa.concat_tables(rows), files


class PrepareSpy:
    """Calls the real `rewrite.prepare`, records what it prepared, and runs `before_commit` once, right after the
    first prepare: another writer committing between this sink's rewrite and its commit (that writer's own
    prepare, if it is a sink, is not recorded)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, before_commit: Callable[[], object] | None = None) -> None:
        self.calls: list[rewrite.Rewrite] = []
        self._real = rewrite.prepare
        self._before_commit = before_commit
        self._other_writer = False
        monkeypatch.setattr(rewrite, "prepare", self)

    def __call__(self, *args: Any, **kwargs: Any) -> rewrite.Rewrite:
        prepared = self._real(*args, **kwargs)
        if self._other_writer:
            return prepared
        self.calls.append(prepared)
        if self._before_commit is not None:
            before_commit, self._before_commit = self._before_commit, None
            self._other_writer = True
            try:
                before_commit()
            finally:
                self._other_writer = False
        return prepared


def test_a_correction_rewrites_only_the_file_holding_its_row(tmp_path):
    sink, stored, files = _seeded(tmp_path)
    assert all(len(f) == 1 for f in files)
    before = _files(tmp_path)

    fresh = _window(300, 5)
    # The whole W2 group at 105 s (positions 0-2) is read back late; only position 1 was corrected.
    corrected = _rows([("W2", 105, 1, -1.5)], received_s=400, substituted=True)
    group = _rows([("W2", 105, 0, 1050.0), ("W2", 105, 2, 1052.0)], received_s=400)
    batch = pa.concat_tables([fresh, group, corrected])
    commit = sink.commit(batch, version=4, may_exist=_late(batch, 3))
    assert commit.mode == "merge"
    assert commit.rows == fresh.num_rows + 1

    actions = CommitLog(str(tmp_path / STREAM_VALUES.name)).files(commit.delta_version)
    assert actions.removed == files[1]  # the second commit's file holds 105 s; no other file is touched
    after = _files(tmp_path)
    assert {p: after[p] for p in files[0] + files[2]} == {p: before[p] for p in files[0] + files[2]}
    assert set(after) == (set(before) - set(files[1])) | set(actions.added)
    rewritten = [p for p in actions.added if after[p][0] < BASE_US + 300_000_000]
    assert len(rewritten) == 1 and after[rewritten[0]] == before[files[1][0]]  # same time range, same rows
    assert pq.read_metadata(tmp_path / STREAM_VALUES.name / rewritten[0]).num_rows == \
        pq.read_metadata(tmp_path / STREAM_VALUES.name / files[1][0]).num_rows

    table = _table(tmp_path)
    assert table.equals(_applied(pa.concat_tables([stored, fresh]), corrected))  # positions 0 and 2 as they were
    assert _doubled(table) == 0


def test_identical_late_rows_are_dropped_without_touching_a_file(tmp_path):
    sink, stored, _ = _seeded(tmp_path)
    log = CommitLog(str(tmp_path / STREAM_VALUES.name))
    fresh = _window(300, 3)
    # A re-read of a W2 group and of W3's system state, identical but for when they were received.
    again = _rows([("W2", 101, p, 1010.0 + p) for p in range(3)] + [("W3", 101, 0, "I/O Timeout")], received_s=999)
    batch = pa.concat_tables([fresh, again])
    commit = sink.commit(batch, version=4, may_exist=_late(batch, again.num_rows))
    assert commit.mode == "append" and commit.rows == fresh.num_rows
    assert log.files(commit.delta_version).removed == ()
    assert _table(tmp_path).equals(_canon(pa.concat_tables([stored, fresh])))  # received_at of the originals kept

    # A batch of nothing but identical re-reads writes no file and still records its version (exactly once).
    files = _files(tmp_path)
    only = sink.commit(again, version=5, may_exist=_late(again, again.num_rows))
    assert only.mode == "append" and only.rows == 0
    assert _files(tmp_path) == files
    assert DeltaTable(str(tmp_path / STREAM_VALUES.name)).transaction_version(APP) == 5
    assert sink.commit(again, version=5, may_exist=_late(again, again.num_rows)).mode == "skipped"


def test_a_late_row_the_table_does_not_hold_gets_a_file_of_its_own(tmp_path):
    sink, stored, _ = _seeded(tmp_path)
    fresh = _window(300, 5)
    unknown = _rows([("W1", 150.5, 0, 7.0)])  # inside the second commit's time range, but never stored
    batch = pa.concat_tables([fresh, unknown])
    before = _files(tmp_path)
    commit = sink.commit(batch, version=4, may_exist=_late(batch, 1))
    assert commit.mode == "append"

    added = {p: r for p, r in _files(tmp_path).items() if p not in before}
    assert set(before) <= set(_files(tmp_path))  # nothing rewritten
    assert sorted(added.values()) == [(BASE_US + 150_500_000,) * 2, (BASE_US + 300_000_000, BASE_US + 304_000_000)]
    table = _table(tmp_path)
    assert table.equals(_canon(pa.concat_tables([stored, fresh, unknown])))
    assert _doubled(table) == 0


def test_a_correction_of_a_group_cut_across_two_files_rewrites_both(tmp_path, monkeypatch):
    """Files are cut every FILE_ROWS rows, whatever the instant: a group can straddle two files."""
    monkeypatch.setattr(rewrite, "FILE_ROWS", 7)  # 5 rows a second: the W2 group at 1 s is cut after position 0
    sink, stored, files = _seeded(tmp_path, (0,))
    assert len(files[0]) == 8
    group = _rows([("W2", 1, p, -p - 0.5) for p in range(3)], received_s=50)
    commit = sink.commit(group, version=2, may_exist=_late(group, 3))
    actions = CommitLog(str(tmp_path / STREAM_VALUES.name)).files(commit.delta_version)
    assert (commit.mode, len(actions.removed), len(actions.added)) == ("merge", 2, 2)
    table = _table(tmp_path)
    assert _doubled(table) == 0
    assert table.equals(_applied(stored, group))


def test_late_rows_of_the_commit_that_creates_the_table_are_inserted(tmp_path):
    rows = _rows([("W1", 0, 0, 1.0), ("W1", 1, 0, 2.0), ("W3", 1, 0, "I/O Timeout")])
    commit = StreamSink(DeltaStore(str(tmp_path)), APP).commit(rows, version=1, may_exist=_late(rows, 2))
    assert (commit.mode, commit.rows) == ("append", 3)
    assert _table(tmp_path).equals(_canon(rows))


def test_a_compaction_between_prepare_and_commit_makes_the_sink_prepare_again(tmp_path, monkeypatch, caplog):
    """delta-rs' conflict check ignores removes that change no data: rebased past the compaction, the rewrite would
    remove a file that is already gone and leave the old row in the compacted file beside the corrected one."""
    sink, stored, files = _seeded(tmp_path)
    store = DeltaStore(str(tmp_path))
    compacted: list[dict] = []
    spy = PrepareSpy(monkeypatch, lambda: compacted.append(store.compact(STREAM_VALUES.name)))

    correction = _rows([("W1", 105, 0, 99.5)], received_s=400, substituted=True)
    fresh = _window(300, 2)
    batch = pa.concat_tables([fresh, correction])
    with caplog.at_level(logging.WARNING, logger="pi_platform.storage.conflicts"):
        commit = sink.commit(batch, version=4, may_exist=_late(batch, 1))

    assert compacted[0]["files_removed"] == 3  # the three settled files became one, while the sink waited
    table = _table(tmp_path)
    assert _doubled(table) == 0
    assert table.equals(_applied(pa.concat_tables([stored, fresh]), correction))  # corrected, the rest once each
    assert commit.mode == "merge"
    assert DeltaTable(str(tmp_path / STREAM_VALUES.name)).transaction_version(APP) == 4

    assert spy.calls[0].removed == set(files[1])  # first prepared against the file the compaction removed
    assert len(spy.calls) == 2 and spy.calls[1].removed.isdisjoint(files[1])  # then against the compacted one
    assert any("batch 4 of " + APP in r.getMessage() and "lost a race" in r.getMessage() for r in caplog.records)


def test_a_blind_append_between_prepare_and_commit_commits_the_same_files(tmp_path, monkeypatch, caplog):
    sink, stored, files = _seeded(tmp_path)
    other_rows = _rows([("X1", 105, 0, 5.0), ("X1", 106, 0, "I/O Timeout")])
    other = StreamSink(DeltaStore(str(tmp_path)), "pi-platform-stream:shard-2")
    spy = PrepareSpy(monkeypatch, lambda: other.commit(other_rows, version=1))

    correction = _rows([("W2", 205, p, -1.0 * p) for p in range(3)], received_s=400)
    fresh = _window(300, 2)
    batch = pa.concat_tables([fresh, correction])
    with caplog.at_level(logging.WARNING, logger="pi_platform.storage.conflicts"):
        commit = sink.commit(batch, version=4, may_exist=_late(batch, 3))

    table = _table(tmp_path)
    assert _doubled(table) == 0
    assert table.equals(_applied(pa.concat_tables([stored, fresh, other_rows]), correction))
    assert commit.mode == "merge"
    dt = DeltaTable(str(tmp_path / STREAM_VALUES.name))
    assert (dt.transaction_version(APP), dt.transaction_version("pi-platform-stream:shard-2")) == (4, 1)

    assert sum("lost a race" in r.getMessage() for r in caplog.records) == 1  # not rebased past the other writer
    assert len(spy.calls) == 1  # the files it removes were still live: committed as prepared
    actions = CommitLog(str(tmp_path / STREAM_VALUES.name)).files(commit.delta_version)
    assert actions.removed == files[2]
    assert set(actions.added) == {a.path for a in spy.calls[0].actions if isinstance(a, AddAction)}


def test_a_replayed_batch_with_late_rows_is_skipped(tmp_path, monkeypatch):
    sink, stored, _ = _seeded(tmp_path)
    correction = _rows([("W3", 201, 0, 3.25)], received_s=400)  # the system state was replaced by a value
    first = sink.commit(correction, version=4, may_exist=_late(correction, 1))
    assert first.mode == "merge"
    table, version = _table(tmp_path), DeltaTable(str(tmp_path / STREAM_VALUES.name)).version()
    assert table.equals(_applied(stored, correction))

    spy = PrepareSpy(monkeypatch)
    for replaying in (sink, StreamSink(DeltaStore(str(tmp_path)), APP)):  # the same sink, and one after a restart
        replay = replaying.commit(correction, version=4, may_exist=_late(correction, 1))
        assert (replay.mode, replay.rows) == ("skipped", 0)
    assert spy.calls == []  # not even a file written
    assert DeltaTable(str(tmp_path / STREAM_VALUES.name)).version() == version
    assert _table(tmp_path).equals(table)


def test_a_rewrite_prepared_ahead_is_committed_with_the_next_batch_as_prepared(tmp_path, monkeypatch):
    """A verification round's rewrite is made beside the batcher (`StreamSink.prepare`); the batch that carries it
    writes only its own rows and commits the prepared files with them."""
    sink, stored, files = _seeded(tmp_path)
    correction = _rows([("W2", 105, 1, -1.5)], received_s=400, substituted=True)
    ahead = sink.prepare(correction, np.ones(1, dtype=bool))
    assert ahead.change.removed == set(files[1])
    assert _table(tmp_path).equals(_canon(stored))  # nothing committed yet

    spy = PrepareSpy(monkeypatch)
    fresh = _window(300, 2)
    commit = sink.commit(fresh, version=4, ahead=ahead)
    assert (commit.mode, commit.rows) == ("merge", fresh.num_rows + 1)
    assert len(spy.calls) == 1 and not spy.calls[0].removed  # the batch wrote only its fresh rows
    actions = CommitLog(str(tmp_path / STREAM_VALUES.name)).files(commit.delta_version)
    assert actions.removed == files[1]
    assert {a.path for a in ahead.change.actions if isinstance(a, AddAction)} < set(actions.added)
    table = _table(tmp_path)
    assert table.equals(_applied(pa.concat_tables([stored, fresh]), correction)) and _doubled(table) == 0
    assert DeltaTable(str(tmp_path / STREAM_VALUES.name)).transaction_version(APP) == 4


def test_a_rewrite_prepared_ahead_of_a_compaction_is_written_again_at_commit(tmp_path, monkeypatch):
    sink, stored, files = _seeded(tmp_path)
    correction = _rows([("W1", 105, 0, 99.5)], received_s=400, substituted=True)
    ahead = sink.prepare(correction, np.ones(1, dtype=bool))
    assert ahead.change.removed == set(files[1])
    assert DeltaStore(str(tmp_path)).compact(STREAM_VALUES.name)["files_removed"] == 3  # its file merged meanwhile

    spy = PrepareSpy(monkeypatch)
    fresh = _window(300, 2)
    commit = sink.commit(fresh, version=4, ahead=ahead)
    assert commit.mode == "merge"
    assert len(spy.calls) == 1 and spy.calls[0].removed and spy.calls[0].removed.isdisjoint(files[1])
    table = _table(tmp_path)
    assert table.equals(_applied(pa.concat_tables([stored, fresh]), correction)) and _doubled(table) == 0


def test_only_the_copies_of_files_replaced_since_are_written_again(tmp_path, monkeypatch):
    """A round's rewrite spans many files (hundreds at 50,000 values/s); one of them merged by a compaction meanwhile
    must not cost writing them all again in the batch that carries it (a 10-s commit, measured)."""
    sink, stored, files = _seeded(tmp_path)
    first, second = (_rows([(w, s, 0, 0.5)], received_s=400, substituted=True) for w, s in (("W1", 105), ("W1", 205)))
    ahead = sink.prepare(pa.concat_tables([first, second]), np.ones(2, dtype=bool))
    assert ahead.change.removed == set(files[1] + files[2])
    other = _rows([("W3", 207, 0, 2.5)], received_s=401, substituted=True)  # replaces the third file meanwhile
    sink.commit(other, version=4, may_exist=np.ones(1, dtype=bool))
    replaced = set(_files(tmp_path)) - set(files[0] + files[1])

    spy = PrepareSpy(monkeypatch)
    fresh = _window(300, 2)
    commit = sink.commit(fresh, version=5, ahead=ahead)
    assert len(spy.calls) == 1 and spy.calls[0].removed == replaced  # only the replaced file's rows again
    removed = CommitLog(str(tmp_path / STREAM_VALUES.name)).files(commit.delta_version).removed
    assert set(removed) == set(files[1]) | replaced
    table = _table(tmp_path)
    assert table.equals(_applied(pa.concat_tables([stored, fresh]), first, second, other)) and _doubled(table) == 0


def test_a_batch_correcting_the_file_a_prepared_rewrite_replaces_rewrites_it_once_with_both(tmp_path):
    """Two rewrites of one file in one commit would each add a copy of its other rows."""
    sink, stored, files = _seeded(tmp_path)
    prepared_row = _rows([("W2", 105, 1, -1.5)], received_s=400, substituted=True)
    ahead = sink.prepare(prepared_row, np.ones(1, dtype=bool))
    own = _rows([("W1", 106, 0, 7.75)], received_s=401, substituted=True)  # the same file, from the batch itself
    fresh = _window(300, 2)
    batch = pa.concat_tables([fresh, own])
    commit = sink.commit(batch, version=4, may_exist=_late(batch, 1), ahead=ahead)
    assert (commit.mode, commit.rows) == ("merge", fresh.num_rows + 2)
    assert CommitLog(str(tmp_path / STREAM_VALUES.name)).files(commit.delta_version).removed == files[1]
    table = _table(tmp_path)
    assert table.equals(_applied(pa.concat_tables([stored, fresh]), prepared_row, own)) and _doubled(table) == 0


def test_rejects_of_a_rewrite_prepared_ahead_are_quarantined_by_the_commit_that_carries_it(tmp_path):
    sink, stored, _ = _seeded(tmp_path)
    correction = _rows([("W1", 105, 0, 99.5)], received_s=400, substituted=True)
    ahead_of_time = _rows([("W1", 400_000, 0, 1.0)], received_s=400)  # four days ahead: stream_values rejects it
    ahead = sink.prepare(pa.concat_tables([correction, ahead_of_time]), np.array([True, False]))
    store = DeltaStore(str(tmp_path))
    assert ahead.rejects.num_rows == 1 and not store.exists(QUARANTINE.name)  # not before its commit

    sink.commit(_window(300, 2), version=4, ahead=ahead)
    quarantined = store.read(QUARANTINE.name)
    assert quarantined.num_rows == 1 and quarantined["web_id"].to_pylist() == ["W1"]
    assert _table(tmp_path).equals(_applied(pa.concat_tables([stored, _window(300, 2)]), correction))


def test_write_files_cuts_sorted_files_with_disjoint_time_ranges_and_marks_data_change(tmp_path):
    uri = str(tmp_path / "t")
    rows = pa.concat_tables([_window(0, 30), _window(30, 30)])  # 300 rows
    shuffled = rows.take(pa.array(np.random.default_rng(7).permutation(rows.num_rows)))
    first = write_files(uri, None, shuffled.slice(0, 150), order_by="timestamp", file_rows=64, row_group_rows=32)
    second = write_files(uri, None, shuffled.slice(150), order_by="timestamp", file_rows=64, row_group_rows=32,
                         data_change=False)

    for added in (first, second):
        assert [pq.read_metadata(Path(uri) / a.path).num_rows for a in added] == [64, 64, 22]
        ranges = []
        for action in added:
            stamps = pq.read_table(Path(uri) / action.path)["timestamp"].cast(pa.int64()).to_numpy()
            assert (np.diff(stamps) >= 0).all()  # sorted by order_by within the file
            ranges.append((stamps[0], stamps[-1]))
            stats = json.loads(action.stats)
            assert stats["numRecords"] == len(stamps)
        # ...and across files: a file's range ends where the next one's begins (an instant's group may be cut)
        assert all(hi <= lo for (_, hi), (lo, _) in zip(ranges, ranges[1:]))
    assert [a.data_change for a in first + second] == [True] * 3 + [False] * 3

    create_table_with_add_actions(uri, Schema.from_arrow(STREAM_SCHEMA), first + second, mode="append")
    log = [json.loads(line) for line in (Path(uri) / "_delta_log" / f"{0:020d}.json").read_text().splitlines()]
    written = {a["add"]["path"]: a["add"]["dataChange"] for a in log if "add" in a}
    assert written == {**{a.path: True for a in first}, **{a.path: False for a in second}}
    assert _canon(DeltaTable(uri).to_pyarrow_table()).equals(_canon(rows))
