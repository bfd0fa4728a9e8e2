"""Compaction of a time-ordered table (`stream_values`) that keeps every file narrow in time.

delta-rs' OPTIMIZE bin-packs files in any order, so a compacted `stream_values` file spans whatever the packer
put together, up to ~100 MB. The stream sink replaces a late group by rewriting the file holding it
(`streaming/rewrite.py`) and finds that file by its time statistics: a wide file is a candidate for every
lookup, and a correction landing in a large one rewrites all of it, every micro-batch. Here files are merged
only with their neighbours in time, sorted by time, in two tiers:

- recent files (newest value less than `settled_s` ago, while PI corrections still come) into files of at most
  `recent_rows` rows, so a correction keeps rewriting thousands of rows, not millions;
- settled files into files of up to `settled_rows` rows, for readers scanning history.

A compaction changes no row: its actions say `dataChange=false` (the feed skips them). It can race the sink. A
compaction that loses to a commit that removed one of its files fails delta-rs' conflict check and that bin is
planned again from the table as it is; the other way round the sink checks its own files (`StreamSink.commit`).
"""

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable
from deltalake.transaction import RemoveAction

from pi_platform.storage.conflicts import retry_conflicts
from pi_platform.storage.datafiles import live_paths, table_filesystem, write_files

SETTLED_S = 600.0  # PI corrections later than this are rare: one rewrite of a large file each
RECENT_ROWS = 16_384  # 2 x the stream sink's own files: half the live files (delta-rs' commit cost grows with them)
SETTLED_ROWS = 1_048_576
_ROW_GROUP_ROWS = 8_192  # what a lookup of one instant reads
_METADATA = {"pi_platform.mode": "compaction"}  # how the table's history names these commits


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    rows: int


def compact_in_order(load: Callable[[], DeltaTable], uri: str, options: dict[str, str] | None, column: str, *,
                     now_us: int | None = None, settled_s: float = SETTLED_S, recent_rows: int = RECENT_ROWS,
                     settled_rows: int = SETTLED_ROWS, lock: AbstractContextManager | None = None,
                     duty: float = 1.0, halt: threading.Event | None = None) -> dict[str, int]:
    """Merge small neighbouring files of the table `load()` returns, tier by tier, one commit per merged group
    (a lost race redoes one group, not the whole compaction). Returns files removed and added. `lock`, held while a
    group is checked and committed, is the one a writer in the same process holds through its own commits (the
    stream sink's): neither then loses a race to the other, which would cost it a rewrite. Files written for a group
    skipped at its commit are left for vacuum. `duty` < 1 pauses after each group so that the compaction works only
    that share of its wall time: beside a live writer on two cores, a compaction at full speed (~30 s of reading and
    writing every few minutes at 10,000 values/s) held the writer's commits back and was the live latency's tail.
    `halt` set (the writer stopping): the group in hand is committed and the rest left for the next compaction."""
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    outcome = {"files_removed": 0, "files_added": 0}
    for group in _groups(load(), column, now_us - int(settled_s * 1e6), recent_rows, settled_rows):

        def commit(group: list[_File] = group) -> tuple[int, int]:
            dt = load()
            if not _live(dt, group):  # another writer rewrote one: planned again next time
                return 0, 0
            rows = ds.dataset([f.path for f in group], schema=pa.schema(dt.schema().to_arrow()), format="parquet",
                              filesystem=table_filesystem(uri, options)).to_table()
            added = write_files(uri, options, rows, order_by=column, file_rows=max(rows.num_rows, 1),
                                row_group_rows=_ROW_GROUP_ROWS, data_change=False)
            stamp = int(time.time() * 1000)
            removed = [RemoveAction(f.path, False, stamp, f.size, {}) for f in group]
            with lock or nullcontext():
                if lock is not None:
                    dt.update_incremental()
                    if not _live(dt, group):  # the writer holding the lock rewrote one meanwhile
                        return 0, 0
                dt.create_write_transaction([*removed, *added], mode="append", schema=dt.schema(),
                                            commit_properties=CommitProperties(custom_metadata=_METADATA))
            return len(removed), len(added)

        started = time.monotonic()
        removed, added = retry_conflicts(commit, f"compaction of {len(group)} files of {uri}")
        outcome["files_removed"] += removed
        outcome["files_added"] += added
        if (halt or threading.Event()).wait((time.monotonic() - started) * (1 / duty - 1)):
            break
    return outcome


def _live(dt: DeltaTable, group: list[_File]) -> bool:
    live = live_paths(dt)
    return all(f.path in live for f in group)


def _groups(dt: DeltaTable, column: str, settled_before_us: int, recent_rows: int, settled_rows: int
            ) -> list[list[_File]]:
    """Runs of small neighbouring files (in order of their first value, no large file between them) whose rows
    together fit one file of their tier. A file is small below half its tier's size, so merged files are not merged
    again."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    low, high = f"min.{column}", f"max.{column}"
    if actions.num_rows < 2 or low not in actions.column_names:
        return []
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_numpy()
    rows = pc.fill_null(actions.column("num_records"), 0).to_numpy()
    known = pc.and_(pc.is_valid(actions.column(low)), pc.is_valid(actions.column(high))).to_numpy(zero_copy_only=False)
    first, last = (pc.fill_null(actions.column(name).cast(pa.int64()), 0).to_numpy() for name in (low, high))
    groups: list[list[_File]] = []
    for settled, limit in ((True, settled_rows), (False, recent_rows)):
        tier = known & ((last < settled_before_us) == settled)
        run: list[_File] = []
        total = 0
        for i in np.flatnonzero(tier)[np.argsort(first[tier], kind="stable")]:
            small = rows[i] < limit // 2
            if run and (not small or total + rows[i] > limit):
                groups.append(run)
                run, total = [], 0
            if small:
                run.append(_File(paths[i], int(sizes[i]), int(rows[i])))
                total += int(rows[i])
        groups.append(run)
    return [group for group in groups if len(group) > 1]
