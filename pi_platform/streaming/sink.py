"""The `stream_values` Delta table as the collector sees it: exactly-once commits, high-water marks, quarantine.

Exactly once: each commit carries an application transaction (app_id = the collector's name, version =
the WAL offset the batch ends at), written atomically with the rows. Before committing, the sink asks the
table which version it already holds; after a crash the collector replays the WAL from that offset, so
a batch is either entirely in the table or entirely replayed, never both.

Several writers (sharded collectors, each its own app id; the maintenance job's compaction) commit to the
one table optimistically. delta-rs reconciles concurrent blind appends itself; what it cannot (a merge whose
read files another writer rewrote, a compaction racing a merge) raises `CommitFailedError`, and the commit is
retried with backoff and jitter, a log line per retry (`storage.store.retry_conflicts`, shared with every
DeltaStore commit). Each retry first re-reads the table's version of this
app id: a commit that succeeded although its caller saw an error is never appended twice.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from pi_platform.storage import DeltaStore, split_valid
from pi_platform.storage.quarantine import quarantine_rows
from pi_platform.storage.schemas import stream_values
from pi_platform.storage.store import retry_conflicts
from pi_platform.storage.tables import QUARANTINE, STREAM_VALUES
from pi_platform.streaming.messages import STREAM_SCHEMA

_KEY_MATCH = "t.web_id = s.web_id AND t.timestamp = s.timestamp AND t.position = s.position"
_ATTEMPTS = 12  # conflicts, each followed by a backoff of up to 5 s; then the collector's batch loop retries
_CONTENT = [name for name in STREAM_SCHEMA.names if name != "received_at"]


@dataclass(frozen=True)
class Commit:
    """One committed micro-batch, as the status file and the Dagster sensor report it."""

    delta_version: int
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

    def commit(self, rows: pa.Table, *, version: int, may_exist: np.ndarray | None = None) -> Commit:
        """Validate, quarantine what fails, and commit the rest as batch `version` (idempotent).

        `may_exist` marks rows that may already be in the table; those identical to the stored row are
        dropped and the others merged on the key; all other rows are inserted.
        """
        rows = rows.select(STREAM_SCHEMA.names)
        if may_exist is None:
            may_exist = np.zeros(rows.num_rows, dtype=bool)
        split = split_valid(rows.append_column("_may_exist", pa.array(may_exist)), stream_values(),
                            time_column="timestamp")
        if split.rejects.num_rows:
            self.quarantine(split.rejects)
        valid_may_exist = split.valid["_may_exist"].to_numpy(zero_copy_only=False)
        valid_all = split.valid.drop_columns(["_may_exist"]).cast(STREAM_SCHEMA)

        def attempt() -> Commit:
            dt = self._delta()
            if dt is not None and (dt.transaction_version(self.app_id) or -1) >= version:
                return self._done(dt, version, valid_all, split.rejects.num_rows, "skipped")
            valid, merge = valid_all, False
            if dt is not None and valid_may_exist.any():
                changed = self._changed(dt, valid_all.filter(pa.array(valid_may_exist)))
                valid = pa.concat_tables([valid_all.filter(pa.array(~valid_may_exist)), changed])
                merge = changed.num_rows > 0
            properties = CommitProperties(app_transactions=[Transaction(app_id=self.app_id, version=version)],
                                          custom_metadata=commit_metadata(valid, version, merge, self.app_id))
            if merge and dt is not None and valid.num_rows:
                self._merge(dt, valid, changed, properties)
                mode = "merge"
            else:  # given the table object, delta-rs advances it to the version it commits
                write_deltalake(self.uri if dt is None else dt, valid, mode="append", storage_options=self._options,
                                commit_properties=properties)
                mode = "append"
            if dt is None:  # this commit created the table
                dt = self._delta()
                assert dt is not None
            return self._done(dt, version, valid, split.rejects.num_rows, mode)

        return retry_conflicts(attempt, f"batch {version} of {self.app_id}", _ATTEMPTS)

    def _changed(self, dt: DeltaTable, rows: pa.Table) -> pa.Table:
        """Rows that are not already stored identically (received_at aside)."""
        lo, hi = pc.min_max(rows["timestamp"]).values()
        # Pruning the files by their statistics first: a dataset over every file of the table (hundreds between
        # compactions) costs far more to build than reading the few that can hold the range.
        stored = dt.to_pyarrow_dataset(file_pruning_predicate=_time_range("timestamp", lo, hi)).to_table(
            columns=_CONTENT, filter=(ds.field("timestamp") >= lo) & (ds.field("timestamp") <= hi))
        stored = stored.filter(pc.is_in(stored["web_id"], pc.unique(rows["web_id"])))
        if stored.num_rows == 0:
            return rows
        known = set(_fingerprints(stored).tolist())
        fresh = np.fromiter((f not in known for f in _fingerprints(rows).tolist()), dtype=bool,
                            count=rows.num_rows)
        return rows.filter(pa.array(fresh))

    def _merge(self, dt: DeltaTable, rows: pa.Table, stored: pa.Table, properties: CommitProperties) -> None:
        """Merge `rows`, of which only `stored` may match a row in the table (the rest are above their stream's
        high-water mark, so they are inserted whatever the predicate's time range)."""
        lo, hi = pc.min_max(stored["timestamp"]).values()
        # The literal time range lets delta-rs skip files by their statistics instead of scanning the table; it
        # spans the late rows only, not the batch's fresh ones, or a correction of a value minutes old would
        # read every file committed since.
        predicate = f"{_KEY_MATCH} AND {_time_range('t.timestamp', lo, hi)}"
        (
            dt.merge(rows, predicate=predicate, source_alias="s", target_alias="t", commit_properties=properties)
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )

    def _done(self, dt: DeltaTable, version: int, rows: pa.Table, rejects: int, mode: str) -> Commit:
        now = time.time()
        max_ts = pc.max(rows["timestamp"]).value if rows.num_rows else None
        return Commit(
            delta_version=dt.version(),
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




def _fingerprints(rows: pa.Table) -> np.ndarray:
    return pd.util.hash_pandas_object(rows.select(_CONTENT).to_pandas(), index=False).to_numpy()


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


def _time_range(column: str, lo: pa.TimestampScalar, hi: pa.TimestampScalar) -> str:
    return f"{column} >= '{_iso(lo)}' AND {column} <= '{_iso(hi)}'"


def _iso(scalar: pa.TimestampScalar) -> str:
    return datetime.fromtimestamp(scalar.value / 1e6, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
