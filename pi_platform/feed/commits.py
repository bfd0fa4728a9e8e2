"""The Delta commit log of `stream_values`, read one version at a time: what each commit changed.

Why the log and not the table: a snapshot says what is there, not what is new. Every commit is one
`_delta_log/<version>.json` file written atomically, and versions are the single order all writers (several
collectors, compaction, maintenance) agree on, so "the rows of the files version v added" is exactly what v
made visible. The files are read through delta-rs's own object-store layer, so a local lake and an `s3://`
lake with `PI_DELTA_STORAGE_OPTIONS` behave alike.

`dataChange=false` actions (OPTIMIZE/compaction rewriting files) change no row and are ignored. A commit that
removes data files with `dataChange=true` (the sink's rewrite of files holding corrections, a MERGE, a DELETE) is read as
the multiset difference of what it added and what it removed, so rows a merge merely copied into a new file
are not delivered twice; rows it removed without replacement are reported as `deleted`.
"""

import json
import logging
from dataclasses import dataclass
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.fs import DeltaStorageHandler

from pi_platform.errors import PlatformError
from pi_platform.storage.scan import scan_files, scan_table
from pi_platform.storage.tables import STREAM_VALUES
from pi_platform.value_columns import VALUE_KEY

SCHEMA = STREAM_VALUES.schema
log = logging.getLogger(__name__)


class FeedError(PlatformError):
    """The feed cannot go on from the table as it is (files vacuumed, a commit it cannot express)."""


@dataclass(frozen=True)
class CommitFiles:
    """The data-changing actions of one commit (paths relative to the table root, decoded)."""

    version: int
    operation: str
    added: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """Rows one commit made visible (`rows`) and rows it removed without a replacement (`deleted`)."""

    rows: pa.Table
    deleted: pa.Table
    operation: str  # the commit's own name for what it did (WRITE, MERGE, DELETE, OPTIMIZE...)


class CommitLog:
    """Reads `_delta_log/<v>.json` and the data files it names, for a table that exists."""

    def __init__(self, table_uri: str, storage_options: dict[str, str] | None = None) -> None:
        self.table_uri = table_uri
        self._fs = pafs.PyFileSystem(DeltaStorageHandler(table_uri, storage_options or None))

    def has(self, version: int) -> bool:
        """Whether `version` is committed; an unreachable store counts as "not yet" (logged), so the caller's next
        poll retries instead of a network blip ending a long-running follower."""
        try:
            return self._fs.get_file_info(_log_path(version)).type != pafs.FileType.NotFound
        except OSError as exc:
            log.warning("cannot look for commit %d of %s (%s); retrying at the next poll", version, self.table_uri,
                        _first_line(exc))
            return False

    def files(self, version: int) -> CommitFiles:
        try:
            with self._fs.open_input_stream(_log_path(version)) as stream:
                lines = stream.read().decode().splitlines()
        except OSError as exc:
            raise FeedError(f"commit {version} of {self.table_uri} is no longer in its log ({_first_line(exc)}); "
                            "the log was cleaned up past this point: start again with a later --since") from None
        operation, added, removed = "", [], []
        for line in filter(None, lines):
            action = json.loads(line)
            if "commitInfo" in action:
                operation = str(action["commitInfo"].get("operation", ""))
            for kind, bucket in (("add", added), ("remove", removed)):
                if kind in action and action[kind].get("dataChange", True):
                    if action[kind].get("deletionVector"):
                        raise FeedError(f"commit {version} of {self.table_uri} uses deletion vectors, which the "
                                        "feed cannot read; rewrite the table without them (OPTIMIZE)")
                    bucket.append(_relative(action[kind]["path"], self.table_uri, version))
        return CommitFiles(version, operation, tuple(added), tuple(removed))

    def change(self, version: int, filter: ds.Expression | None) -> Change:
        """What `version` changed, restricted to rows matching `filter` (a predicate over columns a correction never
        changes, so a corrected row and the row it replaced are kept or dropped together)."""
        files = self.files(version)
        added = self.read(files.added, filter)
        if not files.removed:
            return Change(added, SCHEMA.empty_table(), files.operation)
        removed = self.read(files.removed, filter)
        new, gone = _multiset_minus(added, removed), _multiset_minus(removed, added)
        replaced = pc.is_in(_key_strings(gone), value_set=_key_strings(new))
        return Change(new, gone.filter(pc.invert(replaced)), files.operation)

    def read(self, paths: tuple[str, ...], filter: ds.Expression | None) -> pa.Table:
        if not paths:
            return SCHEMA.empty_table()
        try:  # storage.scan: files a MERGE wrote hold string_view columns, which a plain filtered scan cannot read
            return _conform(scan_files(paths, filesystem=self._fs, schema=SCHEMA, filter=filter))
        except OSError as exc:
            raise FeedError(f"a data file of {self.table_uri} is gone ({_first_line(exc)}): it was vacuumed while "
                            "the feed was behind; start the feed again with a later --since") from None


def latest_version(table_uri: str, storage_options: dict[str, str] | None) -> int:
    """The table's newest version, -1 if it does not exist yet (the collector has not committed)."""
    if not DeltaTable.is_deltatable(table_uri, storage_options=storage_options or None):
        return -1
    return DeltaTable(table_uri, storage_options=storage_options or None).version()


def newest_per_stream(table_uri: str, storage_options: dict[str, str] | None) -> dict[str, int]:
    """Newest committed timestamp (µs) of every stream, reading two columns of the current snapshot."""
    if latest_version(table_uri, storage_options) < 0:
        return {}
    rows = DeltaTable(table_uri, storage_options=storage_options or None).to_pyarrow_dataset().to_table(
        columns=["web_id", "timestamp"])
    if rows.num_rows == 0:
        return {}
    grouped = rows.group_by("web_id").aggregate([("timestamp", "max")])
    return dict(zip(grouped["web_id"].to_pylist(), grouped["timestamp_max"].cast(pa.int64()).to_pylist(), strict=True))


def snapshot(table_uri: str, storage_options: dict[str, str] | None, version: int,
             filter: ds.Expression | None) -> pa.Table:
    """The rows of the table as of `version` matching `filter`, read through `storage.scan` (files a MERGE of
    corrections wrote hold string_view columns, which a plain filtered Arrow scan cannot compare)."""
    if version < 0:
        return SCHEMA.empty_table()
    try:
        table = DeltaTable(table_uri, version=version, storage_options=storage_options or None)
        return _conform(scan_table(table, filter=filter))
    except OSError as exc:
        raise FeedError(f"version {version} of {table_uri} cannot be read any more ({_first_line(exc)}): its files "
                        "were vacuumed; start the feed again (a new checkpoint) or with a later --since") from None


def _log_path(version: int) -> str:
    return f"_delta_log/{version:020d}.json"


def _relative(path: str, table_uri: str, version: int) -> str:
    if "://" in path or path.startswith("/"):
        raise FeedError(f"commit {version} of {table_uri} adds a file outside the table ({path}); the feed reads "
                        "only tables whose files live under their own root")
    return unquote(path)


def _conform(table: pa.Table) -> pa.Table:
    return table.select(SCHEMA.names).cast(SCHEMA)


def _key_strings(table: pa.Table) -> pa.Array:
    """One string per row key, for set membership across tables."""
    parts = [table[c].cast(pa.string()) for c in VALUE_KEY]
    return pc.binary_join_element_wise(*parts, "\x1f")


def _multiset_minus(left: pa.Table, right: pa.Table) -> pa.Table:
    """Rows of `left` not matched one-for-one by an identical row of `right` (all columns compared).

    A MERGE copies untouched rows into its new file; PI may also hold identical values twice at one
    timestamp (different positions), so this counts rather than de-duplicates."""
    if right.num_rows == 0 or left.num_rows == 0:
        return left
    both = pa.concat_tables([left, right]).append_column(
        "_side", pa.array(np.r_[np.ones(left.num_rows, np.int64), -np.ones(right.num_rows, np.int64)]))
    counts = both.group_by(SCHEMA.names, use_threads=False).aggregate([("_side", "sum")])
    counts = counts.filter(pc.greater(counts["_side_sum"], 0))
    repeat = np.repeat(np.arange(counts.num_rows), counts["_side_sum"].to_numpy())
    return counts.take(pa.array(repeat)).select(SCHEMA.names).cast(SCHEMA)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
