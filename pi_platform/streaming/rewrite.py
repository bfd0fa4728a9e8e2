"""The file actions of one stream commit: fresh rows in new files, late rows written into the files holding them.

Why not a Delta merge: a correction (PI operators edit values minutes after they were archived; the simulator's
plant does, so at 50,000 values/s every micro-batch carries a few) must take the place of the row `stream_values`
holds. delta-rs' merge rewrote each file holding a match *together with the whole batch* into one new file, so
behind a stream of corrections the same file was rewritten and grew with every commit (10k -> 94k rows in 30
commits, the merge 0.16 -> 1.1 s) and the collector fell behind. Here, with the merge's semantics:

- the batch's fresh rows (above their stream's high-water mark) go to new files of their own;
- a late row identical to the stored row of its key (web_id, timestamp, position) is dropped; a changed one
  replaces that row in the file holding it, which is rewritten (so files keep their size and time range, and
  later lookups still find them by their statistics); a late row whose key the table does not hold goes to a
  file of its own.

The sink commits the actions as one Delta transaction carrying the batch's application-transaction version.
"""

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.transaction import AddAction, RemoveAction

from pi_platform.storage.datafiles import write_files
from pi_platform.streaming.messages import STREAM_SCHEMA

_CONTENT = [name for name in STREAM_SCHEMA.names if name != "received_at"]
_GROUP = ("web_id", "timestamp")  # a group: every value of one stream at one instant
_ROW = ("web_id", "timestamp", "position")  # the table's key
_FEW = 4096  # candidate and key rows below which exact key checks use Python tuples
_JOIN_US = 1_000_000  # late instants closer than this share one range in the file-pruning predicate
# Rows per data file at most (a batch is cut by time): what a correction that lands in the file costs to rewrite.
# Measured on a 5-minute window at 50,000 values/s (`bench stream` conditions), per correction: 32k-row files
# ~38 ms, 8k-row files ~15 ms, most of it fixed per file (read, encode, statistics); smaller files would multiply
# the files every commit's lookup prunes (~1,800 in that window already).
FILE_ROWS = 8_192


@dataclass(frozen=True)
class Rewrite:
    actions: list[AddAction | RemoveAction]
    removed: frozenset[str]  # table-relative paths of the files this commit replaces
    written: pa.Table  # the batch's rows this commit adds (fresh and replacing), STREAM_SCHEMA

    @property
    def replaces(self) -> bool:
        return bool(self.removed)


def prepare(dt: DeltaTable | None, uri: str, options: dict[str, str] | None, fresh: pa.Table, late: pa.Table
            ) -> Rewrite:
    """Write the data files for `fresh` rows (none stored) and `late` rows (possibly stored) and return the actions
    that commit them. Nothing is committed: an abandoned rewrite leaves only unreferenced files, which vacuum
    removes."""
    if dt is None:  # no table yet: nothing is stored, so every late row is new
        fresh, late = pa.concat_tables([fresh, late]), late.slice(0, 0)
    actions: list[AddAction | RemoveAction] = []
    removed: set[str] = set()
    written = [fresh]
    if late.num_rows:
        assert dt is not None
        candidates = _candidates(dt, late)
        stored = _stored(candidates, late)
        changed = late.filter(pa.array(~np.isin(_fingerprints(late), _fingerprints(stored))))
        written.append(changed)
        held = stored.filter(pa.array(_matches(stored, changed, _ROW)))
        home = pd.Series(held["_file"].to_numpy(zero_copy_only=False), index=_row_keys(held))
        new_home = home.reindex(_row_keys(changed)).to_numpy()
        homes = set(home.tolist())
        for fragment in candidates.get_fragments():
            if fragment.path not in homes:
                continue
            kept = fragment.to_table(schema=candidates.schema).select(STREAM_SCHEMA.names).cast(STREAM_SCHEMA)
            moved_in = changed.filter(pa.array(new_home == fragment.path))
            # Not sorted again: the file was written in time order, and the few rows moved in only widen the
            # statistics of its last row group.
            rows = pa.concat_tables([kept.filter(pa.array(~_matches(kept, moved_in, _ROW))), moved_in])
            actions.extend(_write(uri, options, rows, order_by=None))
            size = candidates.filesystem.get_file_info(fragment.path).size
            actions.append(RemoveAction(fragment.path, True, int(time.time() * 1000), size, {}))
            removed.add(fragment.path)
        actions.extend(_write(uri, options, changed.filter(pa.array(pd.isna(new_home)))))
    actions.extend(_write(uri, options, fresh))
    return Rewrite(actions, frozenset(removed), pa.concat_tables(written))


def _write(uri: str, options: dict[str, str] | None, rows: pa.Table, order_by: str | None = "timestamp"
           ) -> list[AddAction]:
    return write_files(uri, options, rows, order_by=order_by, file_rows=FILE_ROWS,
                       row_group_rows=FILE_ROWS) if rows.num_rows else []


def _candidates(dt: DeltaTable, late: pa.Table) -> ds.FileSystemDataset:
    """The files whose time statistics admit one of the late instants: a batch's late groups are a few instants
    minutes apart, and the files between them (a few per commit) hold none. (A dataset over every file of the
    table costs far more to build than one over these few.)"""
    return dt.to_pyarrow_dataset(file_pruning_predicate=_instants("timestamp", pc.unique(late["timestamp"])))


def _stored(candidates: ds.FileSystemDataset, late: pa.Table) -> pa.Table:
    """Every stored row of the late rows' groups (all positions, content columns) and the file holding it."""
    wanted = (ds.field("timestamp").isin(pc.unique(late["timestamp"]))
              & ds.field("web_id").isin(pc.unique(late["web_id"])))
    parts = []
    for fragment in candidates.get_fragments():
        rows = fragment.to_table(columns=_CONTENT, filter=wanted, schema=candidates.schema)
        rows = rows.filter(pa.array(_matches(rows, late, _GROUP)))
        if rows.num_rows:
            parts.append(rows.append_column("_file", pa.array([fragment.path] * rows.num_rows, pa.string())))
    if not parts:
        return STREAM_SCHEMA.empty_table().select(_CONTENT).append_column("_file", pa.array([], pa.string()))
    return pa.concat_tables(parts)


def _matches(table: pa.Table, keys: pa.Table, columns: tuple[str, ...]) -> np.ndarray:
    """Per row of `table`: is its key (`columns`) the key of a row of `keys`. Narrowed column by column first
    (vectorised); only rows that pass get the exact check, on Python tuples while they are few (a pandas index
    costs ~5 ms to build, and this runs for every file a batch reads or rewrites)."""
    if table.num_rows == 0 or keys.num_rows == 0:
        return np.zeros(table.num_rows, dtype=bool)
    narrowed = [pc.is_in(table[c], value_set=pc.unique(keys[c])) for c in columns]
    inside = np.logical_and.reduce([m.to_numpy(zero_copy_only=False) for m in narrowed])
    candidates = np.flatnonzero(inside)
    if len(candidates) == 0:
        return inside
    picked = table.take(pa.array(candidates))
    if len(candidates) + keys.num_rows <= _FEW:
        wanted = set(zip(*(_values(keys, c) for c in columns)))
        inside[candidates] = [key in wanted for key in zip(*(_values(picked, c) for c in columns))]
    else:
        inside[candidates] = _index(picked, columns).isin(_index(keys, columns))
    return inside


def _values(table: pa.Table, column: str) -> list:
    return _plain(table[column]).to_pylist()


def _index(table: pa.Table, columns: tuple[str, ...]) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([_plain(table[c]).to_numpy(zero_copy_only=False) for c in columns])


def _plain(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as their µs integers: comparable as Python ints and numpy int64, like the other key columns."""
    return values.cast(pa.int64()) if pa.types.is_timestamp(values.type) else values


def _row_keys(rows: pa.Table) -> pd.MultiIndex:
    return _index(rows, _ROW)


def _fingerprints(rows: pa.Table) -> np.ndarray:
    return pd.util.hash_pandas_object(rows.select(_CONTENT).to_pandas(), index=False).to_numpy()


def _instants(column: str, stamps: pa.Array) -> str:
    """A SQL predicate true at each of `stamps` (nearby instants joined into one range): delta-rs prunes files
    with it by their min/max statistics."""
    us = np.sort(stamps.cast(pa.int64()).to_numpy(zero_copy_only=False))
    runs = np.split(us, np.flatnonzero(np.diff(us) > _JOIN_US) + 1)
    return " OR ".join(f"({column} >= '{_iso(int(run[0]))}' AND {column} <= '{_iso(int(run[-1]))}')" for run in runs)


def _iso(us: int) -> str:
    return pd.Timestamp(us, unit="us", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
