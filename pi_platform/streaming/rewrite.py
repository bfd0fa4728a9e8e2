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

The sink commits the actions as one Delta transaction carrying the batch's application-transaction version. A
verification round's rewrite is prepared before its batch, beside the batcher (`StreamSink.prepare`), against the
table's files as they were then: data files never change, so each copy it made still applies while the file it
replaces is live, and only the others are made again (`Rewrite.without`).
"""

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.transaction import AddAction, RemoveAction

from pi_platform.storage.datafiles import table_filesystem, write_files
from pi_platform.streaming.messages import STREAM_SCHEMA

_CONTENT = [name for name in STREAM_SCHEMA.names if name != "received_at"]
_ROW = ("web_id", "timestamp", "position")  # the table's key
_NAN = ("NaN",)  # stands for a NaN value in a compared row: NaN != NaN would mark it changed
_FEW = 4096  # candidate and key rows below which exact key checks use Python tuples
# Rows per data file at most (a batch is cut by time): what a correction that lands in the file costs to rewrite.
# Measured on a 5-minute window at 50,000 values/s (`bench stream` conditions), per correction: 32k-row files
# ~38 ms, 8k-row files ~15 ms, most of it fixed per file (read, encode, statistics); smaller files would multiply
# the files every commit's lookup prunes (~1,800 in that window already).
FILE_ROWS = 8_192


@dataclass(frozen=True)
class FileRewrite:
    """One stored file replaced by a copy holding the late rows that changed."""

    removed: RemoveAction
    added: list[AddAction]
    moved_in: pa.Table  # the late rows that took the place of its rows, STREAM_SCHEMA


@dataclass(frozen=True)
class Rewrite:
    files: list[FileRewrite]
    inserts: list[AddAction]  # files of rows no stored file holds (fresh, and late rows new to the table)
    inserted: pa.Table  # their rows, STREAM_SCHEMA

    @property
    def actions(self) -> list[AddAction | RemoveAction]:
        return [*self.inserts, *(a for f in self.files for a in (*f.added, f.removed))]

    @property
    def removed(self) -> frozenset[str]:
        """Table-relative paths of the files this commit replaces."""
        return frozenset(f.removed.path for f in self.files)

    @property
    def written(self) -> pa.Table:
        """The rows this commit adds (fresh and replacing), STREAM_SCHEMA."""
        return pa.concat_tables([self.inserted, *(f.moved_in for f in self.files)])

    @property
    def replaces(self) -> bool:
        return bool(self.files)

    def plus(self, other: "Rewrite") -> "Rewrite":
        """Both rewrites in one commit; they must replace different files (each would add its own copy)."""
        assert not self.removed & other.removed
        return Rewrite([*self.files, *other.files], [*self.inserts, *other.inserts],
                       pa.concat_tables([self.inserted, other.inserted]))

    def without(self, gone: frozenset[str]) -> tuple["Rewrite", pa.Table]:
        """This rewrite less its copies of the files in `gone` (another writer replaced them since: a compaction
        merged them), and the late rows those copies held, to be written again into the files that hold them now."""
        kept = [f for f in self.files if f.removed.path not in gone]
        again = [f.moved_in for f in self.files if f.removed.path in gone]
        return (Rewrite(kept, self.inserts, self.inserted),
                pa.concat_tables(again) if again else STREAM_SCHEMA.empty_table())


def data_files(dt: DeltaTable | None) -> pa.Table | None:
    """The add actions (flattened, with statistics) of `dt`'s version: what `prepare` looks late rows up in. None
    when there is no table yet."""
    return None if dt is None else pa.table(dt.get_add_actions(flatten=True))


def prepare(files: pa.Table | None, uri: str, options: dict[str, str] | None, fresh: pa.Table, late: pa.Table
            ) -> Rewrite:
    """Write the data files for `fresh` rows (none stored) and `late` rows (possibly stored) and return the actions
    that commit them, against the table whose `data_files` are `files`. Nothing is committed: an abandoned rewrite
    leaves only unreferenced files, which vacuum removes."""
    if files is None:  # no table yet: nothing is stored, so every late row is new
        fresh, late = pa.concat_tables([fresh, late]), late.slice(0, 0)
    rewritten: list[FileRewrite] = []
    inserts: list[AddAction] = []
    inserted = [fresh]
    if late.num_rows:
        assert files is not None
        fs = table_filesystem(uri, options)
        placed = np.zeros(late.num_rows, dtype=bool)  # late rows whose key a file holds (first one found)
        for path, size in _candidates(files, late):
            with pq.ParquetFile(fs.open_input_file(path)) as data:
                hit = _matches(_in_stream_types(data.read(columns=list(_ROW))), late, _ROW)
                if not hit.any():
                    continue
                stored = _in_stream_types(data.read(columns=STREAM_SCHEMA.names))
            held = stored.filter(pa.array(hit))  # its rows holding a late key
            mine = _matches(late, held, _ROW) & ~placed
            placed |= mine
            incoming = late.filter(pa.array(mine))
            moved_in = incoming.filter(pa.array(~_unchanged(incoming, held)))
            if moved_in.num_rows == 0:  # every late row this file holds is stored as it is: dropped
                continue
            replaced = hit.copy()
            replaced[hit] = _matches(held, moved_in, _ROW)
            # Not sorted again: the file was written in time order, and the few rows moved in only widen the
            # statistics of its last row group.
            rows = pa.concat_tables([stored.filter(pa.array(~replaced)), moved_in])
            rewritten.append(FileRewrite(RemoveAction(path, True, int(time.time() * 1000), size, {}),
                                         _write(uri, options, rows, order_by=None), moved_in))
        unheld = late.filter(pa.array(~placed))
        inserted.append(unheld)
        inserts.extend(_write(uri, options, unheld))
    inserts.extend(_write(uri, options, fresh))
    return Rewrite(rewritten, inserts, pa.concat_tables(inserted))


def _write(uri: str, options: dict[str, str] | None, rows: pa.Table, order_by: str | None = "timestamp"
           ) -> list[AddAction]:
    return write_files(uri, options, rows, order_by=order_by, file_rows=FILE_ROWS,
                       row_group_rows=FILE_ROWS) if rows.num_rows else []


def _candidates(actions: pa.Table, late: pa.Table) -> list[tuple[str, int]]:
    """(path, size) of the files whose time statistics admit one of the late instants: a batch's late groups are a
    few instants minutes apart, and the files between them (a few per commit) hold none. Pruned here on the log's
    add actions (~1 ms at 2,000 files; delta-rs' own pruning into a dataset took ~280 ms)."""
    paths, sizes = actions["path"].to_pylist(), actions["size_bytes"].to_pylist()
    if "min.timestamp" not in actions.column_names:
        return list(zip(paths, sizes, strict=True))
    # Files without statistics are always candidates; a maximum truncated to the millisecond is widened by one.
    low = pc.fill_null(actions["min.timestamp"].cast(pa.int64()), np.iinfo(np.int64).min).to_numpy()
    high = pc.fill_null(actions["max.timestamp"].cast(pa.int64()), np.iinfo(np.int64).max - 1_000).to_numpy() + 999
    instants = np.unique(late["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False))
    inside = np.searchsorted(instants, high, side="right") > np.searchsorted(instants, low, side="left")
    return [(paths[i], sizes[i]) for i in np.flatnonzero(inside)]


def _in_stream_types(table: pa.Table) -> pa.Table:
    """A data file's columns in the stream schema's types (files compacted or merged by delta-rs may carry
    others)."""
    return table.cast(pa.schema([STREAM_SCHEMA.field(name) for name in table.column_names]))


def _matches(table: pa.Table, keys: pa.Table, columns: tuple[str, ...]) -> np.ndarray:
    """Per row of `table`: is its key (`columns`) the key of a row of `keys`. Narrowed column by column first
    (vectorised); only rows that pass get the exact check, on Python tuples while they are few (a pandas index
    costs ~5 ms to build, and this runs for every file a batch reads or rewrites)."""
    if table.num_rows == 0 or keys.num_rows == 0:
        return np.zeros(table.num_rows, dtype=bool)
    picked = table.select(list(columns))
    candidates = np.arange(table.num_rows)
    for column in sorted(columns, key=lambda c: c != "timestamp"):  # the most selective first
        kept = np.flatnonzero(pc.is_in(picked[column], value_set=pc.unique(keys[column])).to_numpy(
            zero_copy_only=False))
        candidates, picked = candidates[kept], picked.take(pa.array(kept))
        if len(candidates) == 0:
            return np.zeros(table.num_rows, dtype=bool)
    inside = np.zeros(table.num_rows, dtype=bool)
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


def _unchanged(incoming: pa.Table, held: pa.Table) -> np.ndarray:
    """Per incoming row: is it stored exactly so, among `held` (stored rows of the same keys)? A file usually holds
    one or two of a batch's late rows: compared as Python tuples (NaN equal to NaN); hashed when many."""
    if incoming.num_rows + held.num_rows > _FEW:
        return np.isin(_fingerprints(incoming), _fingerprints(held))
    stored = set(_tuples(held))
    return np.array([row in stored for row in _tuples(incoming)], dtype=bool)


def _tuples(rows: pa.Table) -> list[tuple]:
    return [tuple(_NAN if v != v else v for v in row) for row in zip(*(_values(rows, c) for c in _CONTENT))]


def _fingerprints(rows: pa.Table) -> np.ndarray:
    return pd.util.hash_pandas_object(rows.select(_CONTENT).to_pandas(), index=False).to_numpy()
