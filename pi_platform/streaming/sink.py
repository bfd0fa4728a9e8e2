"""The `stream_values` Delta table as the collector sees it: exactly-once commits, high-water marks, quarantine.

Exactly once: each commit carries an application transaction (app_id = the collector's name, version =
the WAL offset the batch ends at), written atomically with the rows. Before committing, the sink asks the
table which version it already holds; after a crash the collector replays the WAL from that offset, so
a batch is either entirely in the table or entirely replayed, never both.

Several writers (sharded collectors, each its own app id; the maintenance job's compaction) commit to the
one table optimistically. delta-rs reconciles concurrent blind appends itself; a commit that replaces files
(late groups rewritten in place, `rewrite.py`) is never rebased: any commit in between raises `CommitFailedError`,
and the commit is retried with backoff and jitter, a log line per retry (`storage.conflicts.retry_conflicts`, shared
with every DeltaStore commit), committing the same files again only if every file it removes is still in the
table (else it rewrites them anew). Each retry first re-reads the table's version of this app id: a commit that
succeeded although its caller saw an error is never appended twice.
"""

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Schema, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import create_table_with_add_actions

from pi_platform.storage import DeltaStore, split_valid
from pi_platform.storage.quarantine import quarantine_rows
from pi_platform.storage.schemas import stream_values
from pi_platform.storage.conflicts import retry_conflicts
from pi_platform.storage.datafiles import live_paths
from pi_platform.storage.tables import QUARANTINE, STREAM_VALUES
from pi_platform.streaming import rewrite
from pi_platform.streaming.messages import STREAM_SCHEMA

_ATTEMPTS = 12  # conflicts, each followed by a backoff of up to 5 s; then the collector's batch loop retries


@dataclass(frozen=True)
class Prepared:
    """Rows validated and written ahead of their commit (`StreamSink.prepare`)."""

    rows: pa.Table  # valid, STREAM_SCHEMA
    late: pa.Array  # per row: may already be stored
    rejects: pa.Table  # quarantined by the commit that carries them
    change: rewrite.Rewrite  # against the table's files when prepared


@dataclass(frozen=True)
class Commit:
    """One committed micro-batch, as the status file and the Dagster sensor report it."""

    delta_version: int  # a blind append delta-rs rebased past another writer's commit got a later one
    wal_offset: int
    rows: int
    rejects: int
    mode: str  # "append" | "merge" | "skipped" (already committed)
    committed_at: float
    max_timestamp: float | None


class StreamSink:
    """Writes reconciled micro-batches to `stream_values` and their rejects to the shared quarantine."""

    def __init__(self, store: DeltaStore, app_id: str, table: str = STREAM_VALUES.name) -> None:
        self.store = store
        self.app_id = app_id
        self.table = table
        self.uri = store.uri(table)
        self._options = dict(store.storage_options) or None
        self._dt: DeltaTable | None = None
        # Held through each commit; the collector's own compaction takes it to commit (`storage/compaction.py`), so
        # the two never race each other (a lost race costs the sink a rewrite, the compaction a group).
        self.commit_lock = threading.Lock()

    def _delta(self) -> DeltaTable | None:
        """The table at its newest version. Loaded once, then brought up to date by reading only the log entries
        written since (by this sink or any other writer): a full load replays the checkpoint and every commit after
        it, which at a few commits a second was the largest fixed cost of a micro-batch."""
        if self._dt is None:
            self._dt = self.store.table(self.table) if self.store.exists(self.table) else None
        else:
            self._dt.update_incremental()
        return self._dt

    def committed_offset(self) -> int:
        return self.store.committed_version(self.table, self.app_id) or 0

    def high_water_marks(self) -> dict[str, int]:
        """Newest committed timestamp (µs) per stream: what is above it cannot already be in the table."""
        dt = self._delta()
        if dt is None:
            return {}
        table = dt.to_pyarrow_dataset().to_table(columns=["web_id", "timestamp"])
        if table.num_rows == 0:
            return {}
        grouped = table.group_by("web_id").aggregate([("timestamp", "max")])
        return dict(zip(grouped["web_id"].to_pylist(), grouped["timestamp_max"].cast(pa.int64()).to_pylist(), strict=True))

    def prepare(self, rows: pa.Table, may_exist: np.ndarray) -> Prepared:
        """Validate `rows` and write their files against the table as it is now, for a later `commit(ahead=...)`:
        a verification round's rewrite, made beside the batcher instead of in the batch that carries it. Holds the
        commit lock only to bring the table up to date."""
        valid, late, rejects = self._validated(rows, may_exist)
        with self.commit_lock:
            files = rewrite.data_files(self._delta())
        change = rewrite.prepare(files, self.uri, self._options, valid.filter(pc.invert(late)), valid.filter(late))
        return Prepared(valid, late, rejects, change)

    def commit(self, rows: pa.Table, *, version: int, may_exist: np.ndarray | None = None,
               ahead: Prepared | None = None) -> Commit:
        """Validate, quarantine what fails, and commit the rest as batch `version` (idempotent), together with the
        rows `ahead` prepared (its copy of a file is written again only if that file has gone meanwhile).

        `may_exist` marks rows that may already be in the table (see `rewrite`): one stored identically is dropped,
        a changed one replaces the stored row of its key (web_id, timestamp, position); all other rows are
        inserted. The caller makes sure no commit since `ahead` was prepared wrote a key it holds.
        """
        if may_exist is None:
            may_exist = np.zeros(rows.num_rows, dtype=bool)
        valid, late, split_rejects = self._validated(rows, may_exist)
        if ahead is not None:
            split_rejects = pa.concat_tables([split_rejects, ahead.rejects])
        if split_rejects.num_rows:
            self.quarantine(split_rejects)
        rejects = split_rejects.num_rows
        prepared: list[rewrite.Rewrite] = []  # a lost race commits the same files again while they still apply

        def attempt() -> Commit:
            dt = self._delta()
            if dt is not None and (dt.transaction_version(self.app_id) or -1) >= version:
                return self._done(dt.version(), version, valid, rejects, "skipped")
            if not prepared or (dt is not None and not prepared[0].removed <= live_paths(dt)):
                prepared[:] = [self._rewrite(dt, valid, late, ahead)]
            change = prepared[0]
            if dt is None:  # this commit creates the table (nothing can be late yet)
                create_table_with_add_actions(self.uri, Schema.from_arrow(STREAM_SCHEMA), change.actions,
                                              mode="append", storage_options=self._options,
                                              commit_properties=self._properties(change.written, version, False))
                return self._done(0, version, change.written, rejects, "append")
            # A commit that removes files must not be rebased by delta-rs: its conflict check does not see a
            # compaction that removed the same files (it ignores removes that change no data), and the rows would
            # then be both in the compacted file and in the rewrite. Any commit in between fails it instead, and
            # the next attempt checks the files itself.
            properties = self._properties(change.written, version, change.replaces,
                                          max_commit_retries=0 if change.replaces else None)
            try:
                dt.create_write_transaction(change.actions, mode="append", schema=STREAM_SCHEMA,
                                            commit_properties=properties)
            except CommitFailedError as exc:
                if not change.replaces:
                    raise
                # delta-rs says only "Failed to commit transaction: 0" (its retry count) here
                raise CommitFailedError(f"another writer committed after version {dt.version()} while this commit "
                                        f"rewrote {len(change.removed)} file(s) holding corrections ({exc})") from None
            # Not loaded again here (its cost grows with the table's files): the next batch's load shows it. Without a
            # writer in between (always, for a commit that replaces files) it is the version after the one read.
            mode = "merge" if change.replaces else "append"
            return self._done(dt.version() + 1, version, change.written, rejects, mode)

        with self.commit_lock:
            return retry_conflicts(attempt, f"batch {version} of {self.app_id}", _ATTEMPTS)

    def _validated(self, rows: pa.Table, may_exist: np.ndarray) -> tuple[pa.Table, pa.Array, pa.Table]:
        """The rows that pass validation (STREAM_SCHEMA), which of them may be stored, and the rejects."""
        split = split_valid(rows.select(STREAM_SCHEMA.names).append_column("_may_exist", pa.array(may_exist)),
                            stream_values(), time_column="timestamp")
        late = pa.array(split.valid["_may_exist"].to_numpy(zero_copy_only=False))
        return split.valid.drop_columns(["_may_exist"]).cast(STREAM_SCHEMA), late, split.rejects

    def _rewrite(self, dt: DeltaTable | None, valid: pa.Table, late: pa.Array, ahead: Prepared | None
                 ) -> rewrite.Rewrite:
        """The batch's files, with `ahead`'s as prepared; its copies of files another writer has replaced since (a
        compaction merged them) are written again into the files holding those rows now, together with the batch's
        own. If the batch's own late rows land in a file `ahead` rewrites too, all are written anew against `dt`."""
        files = rewrite.data_files(dt)
        fresh, stored = valid.filter(pc.invert(late)), valid.filter(late)
        if ahead is not None:
            live = set() if files is None else set(files["path"].to_pylist())
            kept, again = ahead.change.without(ahead.change.removed - live)
            own = rewrite.prepare(files, self.uri, self._options, fresh, pa.concat_tables([stored, again]))
            if not own.removed & kept.removed:
                return own.plus(kept)
            fresh = pa.concat_tables([fresh, ahead.rows.filter(pc.invert(ahead.late))])
            stored = pa.concat_tables([stored, ahead.rows.filter(ahead.late)])
        return rewrite.prepare(files, self.uri, self._options, fresh, stored)

    def _properties(self, rows: pa.Table, version: int, merge: bool, max_commit_retries: int | None = None
                    ) -> CommitProperties:
        return CommitProperties(app_transactions=[Transaction(app_id=self.app_id, version=version)],
                                custom_metadata=commit_metadata(rows, version, merge, self.app_id),
                                max_commit_retries=max_commit_retries)

    def _done(self, delta_version: int, version: int, rows: pa.Table, rejects: int, mode: str) -> Commit:
        now = time.time()
        max_ts = pc.max(rows["timestamp"]).value if rows.num_rows else None
        return Commit(
            delta_version=delta_version,
            wal_offset=version,
            rows=rows.num_rows if mode != "skipped" else 0,
            rejects=rejects,
            mode=mode,
            committed_at=now,
            max_timestamp=None if max_ts is None else max_ts / 1e6,
        )

    def quarantine(self, rejects: pa.Table) -> int:
        """Append rejects (REJECT_SCHEMA) not already quarantined: a replayed batch must not add them twice."""
        if rejects.num_rows == 0:
            return 0
        today = datetime.now(timezone.utc).date()
        rows = quarantine_rows(rejects, table_name=self.table, start=today, end=today + timedelta(days=1),
                               run_id=self.app_id)
        if self.store.exists(QUARANTINE.name):
            existing = self.store.read(
                QUARANTINE.name,
                filter=(pc.field("table_name") == self.table) & (pc.field("event_date") == pa.scalar(today)),
                columns=["web_id", "reason", "raw"],
            )
            seen = {orjson.dumps(r) for r in existing.to_pylist()}
            fresh = [orjson.dumps(r) not in seen for r in rows.select(["web_id", "reason", "raw"]).to_pylist()]
            rows = rows.filter(pa.array(fresh, pa.bool_()))
        if rows.num_rows:
            retry_conflicts(lambda: write_deltalake(self.store.uri(QUARANTINE.name), rows, mode="append",
                                                    partition_by=["table_name", "event_date"],
                                                    storage_options=self._options),
                            f"quarantine rows of {self.app_id}", _ATTEMPTS)
        return rows.num_rows


def commit_metadata(rows: pa.Table, version: int, merge: bool, app_id: str) -> dict[str, str]:
    """Written into the Delta commit itself, so the Dagster sensor reports commits from the table alone (per
    writer, when sharded collectors share the table)."""
    meta = {"pi_platform.rows": str(rows.num_rows), "pi_platform.wal_offset": str(version),
            "pi_platform.mode": "merge" if merge else "append", "pi_platform.app_id": app_id}
    if rows.num_rows:
        lo, hi = pc.min_max(rows["timestamp"]).values()
        meta["pi_platform.min_timestamp_us"] = str(lo.value)
        meta["pi_platform.max_timestamp_us"] = str(hi.value)
        meta["pi_platform.streams"] = str(pc.count_distinct(rows["web_id"]).as_py())
    return meta
