"""Filtered, projected reads of Delta tables and their Parquet files, safe against `string_view` files.

Files a Delta MERGE wrote (the streaming sink merged PI's corrections into `stream_values` that way before it
rewrote files itself, and such tables still hold them) hold `string_view` columns. Arrow cannot compare those
with a string filter, neither the file's row-group statistics nor its rows ("Function 'equal' has no kernel
matching input types (string, string_view)"), so a plain `DeltaTable.to_pyarrow_dataset().to_table(filter=...)`
dies as soon as such a file is in the table. Here:

- each file is guaranteed only its partition values: delta-rs would add its Delta statistics, typed as the file
  wrote them; partition values prune the same, and Parquet footers still skip row groups;
- files with a view-typed column are read with the filter's columns, cast to the table's schema and filtered
  after the cast; every other file gets the filter pushed into its scan.

`scan_table` reads one version of a Delta table, `scan_files` named Parquet files of a table (the feed reads the
files a commit added or removed, some no longer in the current snapshot). Every reader of the lake that filters
goes through here: the viewer's pages and the late-join feed.
"""

import re
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from deltalake import DeltaTable


def scan_table(table: DeltaTable, *, filter: ds.Expression | None = None,
               columns: Sequence[str] | None = None) -> pa.Table:
    """Rows of `table` (the version it was opened at) matching `filter`, only `columns` (all when None)."""
    return _scan(_dataset(table), filter, columns)


def scan_files(paths: Sequence[str], *, filesystem: pafs.FileSystem, schema: pa.Schema,
               filter: ds.Expression | None = None, columns: Sequence[str] | None = None) -> pa.Table:
    """Rows of the Parquet files `paths` (on `filesystem`) as `schema`, matching `filter`, only `columns`.
    A file that cannot be opened raises `OSError` (FileNotFoundError once vacuumed)."""
    parquet = ds.ParquetFileFormat()
    fragments = [parquet.make_fragment(path, filesystem=filesystem) for path in paths]
    return _scan(ds.FileSystemDataset(fragments, schema, parquet, filesystem), filter, columns)


def _scan(whole: ds.FileSystemDataset, filter: ds.Expression | None, columns: Sequence[str] | None) -> pa.Table:
    columns = list(whole.schema.names if columns is None else columns)
    plain, viewed = [], []
    for fragment in whole.get_fragments():
        (viewed if any(_is_view(f.type) for f in fragment.physical_schema) else plain).append(fragment)
    parts = [_subset(whole, plain).to_table(filter=filter, columns=columns)]
    if viewed:
        text = "" if filter is None else str(filter)
        wanted = [c for c in whole.schema.names if c in columns or re.search(rf"\b{re.escape(c)}\b", text)]
        rows = _subset(whole, viewed).to_table(columns=wanted)  # cast to the table's schema by the scan
        parts.append((rows if filter is None else rows.filter(filter)).select(columns))
    return pa.concat_tables(parts)


def _is_view(type_: pa.DataType) -> bool:
    return pa.types.is_string_view(type_) or pa.types.is_binary_view(type_)


def _subset(whole: ds.FileSystemDataset, fragments: list[ds.Fragment]) -> ds.FileSystemDataset:
    return ds.FileSystemDataset(fragments, whole.schema, whole.format, whole.filesystem)


def _dataset(table: DeltaTable) -> ds.FileSystemDataset:
    """The table's files, each fragment guaranteed only its partition values (module doc)."""
    delta = table.to_pyarrow_dataset()
    actions = pa.table(table.get_add_actions(flatten=True))
    paths = actions["path"].to_pylist() if actions.num_rows else []
    where = {path: ds.scalar(True) for path in paths}
    for name in actions.column_names:  # every partition column (quarantine has two)
        if name.startswith("partition."):
            column, values = name.removeprefix("partition."), actions[name]
            for path, value in zip(paths, values.to_pylist(), strict=True):
                where[path] &= ds.field(column) == pa.scalar(value, values.type)
    fragments = [delta.format.make_fragment(fragment.path, filesystem=delta.filesystem,
                                            partition_expression=where.get(fragment.path, ds.scalar(True)))
                 for fragment in delta.get_fragments()]
    return ds.FileSystemDataset(fragments, delta.schema, delta.format, delta.filesystem)
