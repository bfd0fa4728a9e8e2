"""DeltaStore: the few write and read patterns the platform needs, each idempotent by construction.

Why not dagster-deltalake's IO manager: its partitioned overwrite uses the first day of a run's window as
the predicate, so a single-run multi-day backfill fails (see docs/dagster-notes, "IO-manager bug"). Here
every write names exactly what it replaces or how it de-duplicates:

- `overwrite_range`: replace the rows of a date range in one commit (daily partitions, reruns, backfills).
- `upsert`: merge on key columns (event frames stay updated while open, never duplicated).
- `append_once`: append guarded by a Delta application transaction (exactly-once micro-batches).
- `maintain`: compact small files and vacuum old versions.

The root is a local directory or an object-store URI (`s3://bucket/prefix`) with delta-rs storage options.
"""

import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Schema, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import create_table_with_add_actions

from pi_platform.errors import PlatformError
from pi_platform.storage.compaction import compact_in_order
from pi_platform.storage.conflicts import COMMIT_ATTEMPTS, retry_conflicts
from pi_platform.storage.datafiles import write_data_files
from pi_platform.storage.tables import TABLES

Data = pa.Table | pa.RecordBatchReader | pd.DataFrame


class StorageError(PlatformError):
    """A Delta table cannot be read or written (bad root, missing credentials, conflicting schema)."""


@dataclass(frozen=True)
class TableInfo:
    """What the UI shows about a table after a write."""

    table: str
    uri: str
    version: int
    num_files: int
    size_bytes: int


@dataclass(frozen=True)
class DeltaStore:
    """A directory (or bucket prefix) of Delta tables, one sub-directory per table name."""

    root: str
    storage_options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.root:
            raise StorageError("Delta root is empty: set PI_DELTA_ROOT to a directory or an s3:// URI")
        if not _is_uri(self.root):
            object.__setattr__(self, "root", str(Path(self.root).expanduser().resolve()))

    def __repr__(self) -> str:  # storage options hold credentials: never print them
        return f"DeltaStore(root={self.root!r}, storage_options=<{len(self.storage_options)} keys>)"

    # ------------------------------------------------------------------ locations and reads
    def uri(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"

    def _options(self) -> dict[str, str] | None:
        return dict(self.storage_options) or None

    def exists(self, table: str) -> bool:
        with self._errors(table, "open"):
            return DeltaTable.is_deltatable(self.uri(table), storage_options=self._options())

    def table(self, table: str, version: int | None = None) -> DeltaTable:
        try:
            with self._errors(table, "open"):
                return DeltaTable(self.uri(table), version=version, storage_options=self._options())
        except TableNotFoundError as exc:
            raise StorageError(f"Delta table {table!r} does not exist under {self.root}: materialise it first") from exc

    @contextmanager
    def _errors(self, table: str, action: str) -> Iterator[None]:
        """Object-store failures (missing bucket, bad credentials, unreachable endpoint) as one line."""
        try:
            yield
        except TableNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(
                f"cannot {action} Delta table {table!r} under {self.root}: {_short(exc)}; "
                "check PI_DELTA_ROOT and PI_DELTA_STORAGE_OPTIONS"
            ) from None

    def read(self, table: str, *, filter: ds.Expression | None = None, columns: list[str] | None = None) -> pa.Table:
        """Arrow table of the rows matching `filter` (partition pruning and file statistics apply)."""
        return self.table(table).to_pyarrow_dataset().to_table(filter=filter, columns=columns)

    def read_range(
        self, table: str, partition_column: str, start: date, end: date, *, columns: list[str] | None = None
    ) -> pa.Table:
        """Rows whose partition date is in [start, end); empty (with the table's schema) if nothing is there."""
        column = ds.field(partition_column)
        return self.read(table, filter=(column >= pa.scalar(start)) & (column < pa.scalar(end)), columns=columns)

    def info(self, table: str) -> TableInfo:
        dt = self.table(table)
        actions = pa.table(dt.get_add_actions(flatten=True))
        size = pc.sum(actions["size_bytes"]).as_py() if actions.num_rows else 0
        return TableInfo(table, self.uri(table), dt.version(), actions.num_rows, int(size or 0))

    # ------------------------------------------------------------------ writes
    def overwrite_range(
        self,
        table: str,
        data: Data,
        *,
        partition_column: str,
        start: date,
        end: date,
        partition_by: list[str] | None = None,
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> TableInfo:
        """Atomically replace every row with `start <= partition_column < end` (and `where` equalities, or
        memberships for a list of values: only those tags' rows of a day) by `data`.

        One commit for any number of days, so a single-run backfill and N daily runs leave the same table,
        and a rerun replaces rather than adds. `data` rows outside the range make the write fail, nothing
        committed. An empty `data` deletes the range. A RecordBatchReader (without `where`) is written by
        `datafiles` in bounded memory, then committed by delta-rs.
        """
        predicate = f"{partition_column} >= '{start.isoformat()}' AND {partition_column} < '{end.isoformat()}'"
        for column, value in (where or {}).items():
            if isinstance(value, str):
                predicate += f" AND {column} = '{_sql_literal(value)}'"
            elif value:
                predicate += f" AND {column} IN ({', '.join(_quoted(v) for v in value)})"
            else:
                raise ValueError(f"overwrite_range: empty value list for {column} would replace nothing")
        arrow = _arrow(data)
        if isinstance(arrow, pa.RecordBatchReader) and not where and partition_by in (None, [partition_column]):
            return self._overwrite_streamed(table, arrow, partition_column=partition_column, start=start, end=end)
        if not self.exists(table):
            # delta-rs needs an existing table for a predicate overwrite; the range is empty anyway.
            return self._write(table, arrow, mode="overwrite", partition_by=partition_by or [partition_column])
        return self._write(table, arrow, mode="overwrite", predicate=predicate, partition_by=partition_by or [partition_column])

    def _overwrite_streamed(self, table: str, reader: pa.RecordBatchReader, *, partition_column: str, start: date,
                            end: date) -> TableInfo:
        """A stream's range overwrite: data files written here in bounded memory (`datafiles`), then ONE commit
        that adds them and removes every file of the range's partitions."""
        uri = self.uri(table)
        failed: list[BaseException] = []

        def source() -> Iterator[pa.RecordBatch]:  # the source's own errors are not storage errors
            try:
                yield from reader
            except BaseException as exc:
                failed.append(exc)
                raise

        try:
            with self._errors(table, "write"):
                actions = write_data_files(uri, self._options(), reader.schema, partition_column, source(), start, end)
        except StorageError:
            if failed:
                raise failed[0] from None
            raise
        days = [(partition_column, ">=", start.isoformat()), (partition_column, "<", end.isoformat())]

        def commit() -> None:
            with self._errors(table, "commit to"):
                if self.exists(table):
                    self.table(table).create_write_transaction(
                        actions, mode="overwrite", schema=reader.schema, partition_by=[partition_column],
                        partition_filters=days)
                else:
                    create_table_with_add_actions(uri, Schema.from_arrow(reader.schema), actions, mode="overwrite",
                                                  partition_by=[partition_column], storage_options=self._options())

        retry_conflicts(commit, f"range overwrite of {table}")  # the files stay valid: a lost race commits again
        return self.info(table)

    def upsert(self, table: str, data: Data, *, keys: Iterable[str], partition_by: list[str] | None = None) -> TableInfo:
        """Insert new rows, update rows whose keys exist (all columns), in one merge commit."""
        source = _arrow(data)
        if isinstance(source, pa.RecordBatchReader):
            source = source.read_all()
        if not self.exists(table):
            return self._write(table, source, mode="append", partition_by=partition_by)
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in keys)

        def merge() -> None:
            with self._errors(table, "merge into"):
                (
                    self.table(table)
                    .merge(source, predicate=predicate, source_alias="s", target_alias="t")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute()
                )

        retry_conflicts(merge, f"merge into {table}")
        return self.info(table)

    def append_once(
        self, table: str, data: Data, *, app_id: str, version: int, partition_by: list[str] | None = None
    ) -> TableInfo | None:
        """Append `data` unless this table already holds batch `version` of writer `app_id`.

        The batch number is committed in the same Delta transaction as the rows (an application
        transaction), so a writer that crashes after the commit and retries the batch cannot double it.
        Versions must grow per app_id. Returns None when the batch was already committed.
        """
        committed = self.committed_version(table, app_id)
        if committed is not None and committed >= version:
            return None
        properties = CommitProperties(app_transactions=[Transaction(app_id=app_id, version=version)])
        return self._write(table, _arrow(data), mode="append", partition_by=partition_by, commit_properties=properties)

    def committed_version(self, table: str, app_id: str) -> int | None:
        """Last batch version `app_id` committed to `table` (None: never, or no table yet)."""
        return self.table(table).transaction_version(app_id) if self.exists(table) else None

    def compact(self, table: str, *, target_size: int | None = None, lock: AbstractContextManager | None = None,
                duty: float = 1.0, halt: threading.Event | None = None) -> dict[str, Any]:
        """Merge small files into larger ones. It may race a live writer (the stream collector, which also calls
        this on its own table between maintenance runs); a lost commit race is retried. A table ordered by a
        column (`TableSpec.ordered_by`) is compacted in that order (`compaction.py`; `target_size` is then moot,
        `lock` is held around each of its commits, `duty` is the share of its time it works, `halt` ends it early)."""
        spec = TABLES.get(table)
        if spec is not None and spec.ordered_by:
            outcome = compact_in_order(lambda: self.table(table), self.uri(table), self._options(), spec.ordered_by,
                                       lock=lock, duty=duty, halt=halt)
            return {**outcome, "version": self.table(table).version()}
        result: dict[str, Any] = {}

        def run() -> None:
            result.update(self.table(table).optimize.compact(target_size=target_size))

        retry_conflicts(run, f"compaction of {table}")
        return {"files_added": int(result.get("numFilesAdded", 0)),
                "files_removed": int(result.get("numFilesRemoved", 0)),
                "version": self.table(table).version()}

    def maintain(self, table: str, *, retention_hours: int = 168, target_size: int | None = None) -> dict[str, Any]:
        """Compact, then vacuum files older than the retention that no live version needs."""
        outcome = self.compact(table, target_size=target_size)
        removed: list[str] = []

        def vacuum() -> None:
            removed[:] = self.table(table).vacuum(retention_hours=retention_hours, dry_run=False,
                                                  enforce_retention_duration=False)

        retry_conflicts(vacuum, f"vacuum of {table}")
        return {**outcome, "files_vacuumed": len(removed), "version": self.table(table).version()}

    def _write(self, table: str, data: pa.Table | pa.RecordBatchReader, *, mode: str, **kwargs: Any) -> TableInfo:
        def write() -> None:
            with self._errors(table, "write"):
                write_deltalake(self.uri(table), data, mode=mode, storage_options=self._options(), **kwargs)

        # a consumed stream cannot be replayed: a RecordBatchReader write gets one attempt
        retry_conflicts(write, f"write to {table}",
                        attempts=1 if isinstance(data, pa.RecordBatchReader) else COMMIT_ATTEMPTS)
        return self.info(table)


def _is_uri(root: str) -> bool:
    return "://" in root


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_S3_ERROR = re.compile(r"<Code>([^<]*)</Code>\s*<Message>([^<]*)</Message>")


def _short(exc: BaseException) -> str:
    """The useful part of a delta-rs/object_store error chain: the S3 error code and message if there is
    one, else the innermost line."""
    text = _ANSI.sub("", str(exc))
    if match := _S3_ERROR.search(text):
        return f"{match.group(1)}: {match.group(2)}"
    lines = [line.strip(" ↳") for line in text.splitlines() if line.strip(" ↳")]
    return lines[-1] if lines else type(exc).__name__


def _sql_literal(value: str) -> str:
    return value.replace("'", "''")


def _quoted(value: str) -> str:
    return f"'{_sql_literal(value)}'"


def _arrow(data: Data) -> pa.Table | pa.RecordBatchReader:
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    return data
