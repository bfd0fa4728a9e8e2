"""A day of recorded values in tag shards: plan, stage every shard on its own, commit the day once.

Why shards: a 100k-tag day is hours of PI reads in one process. Split by a stable hash of each tag's WebID
(`pi_platform.sharding`), the shards are independent units an executor can spread over processes or machines,
and a shard that fails (PI hiccup, lost pod) is read again alone. Why staging: the table must still change in
ONE commit (readers never see half a day, reruns replace the day exactly), so shards do not write
`recorded_values`; each writes its validated rows and its rejects as parquet under the lake's
`_staging/recorded_values/<run id>/`, and the commit streams them all into the same range overwrite the
unsharded path uses (`recorded.commit_values`). Tags never span shards and the key starts with the tag, so the
committed table is identical to the unsharded run's.

Staging goes through delta-rs's own object-store layer (`DeltaStorageHandler`) with the lake's storage options:
a local lake stages on local disk, an `s3://` (or `az://`, `gs://`) lake stages in the same bucket, so a shard
running in another pod writes where the commit step reads. A retried shard rewrites its own files; the run
directory is removed after the commit. A run that fails for good leaves its directory behind; a later run of
the day does not read it (each run stages under its own id), and it can be deleted at any time.
"""

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake.fs import DeltaStorageHandler

from pi_platform import sharding
from pi_platform.batch.recorded import Extracted, Reading, commit_values, read_valid
from pi_platform.batch.window import DayWindow
from pi_platform.client import PIWebAPIConfig
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import RECORDED_VALUES
from pi_platform.value_columns import REJECT_SCHEMA

STAGING_DIR = "_staging"


@dataclass(frozen=True)
class ShardTask:
    """One shard's work: its tags, and the run whose staging directory it writes (the planning run, so a
    re-execution of a failed run stages where the original plan said)."""

    run_id: str
    index: int
    count: int
    web_ids: tuple[str, ...]
    processes: int = 1  # the step's: N-1 reader processes (`recorded_processes`) while it validates and stages

    @property
    def label(self) -> str:
        return f"shard {self.index + 1}/{self.count}"


@dataclass(frozen=True)
class StagedShard:
    run_id: str
    index: int
    rows: int
    rejects: int


class Staging:
    """The staging directory of one run: the selection, and per shard a values file and a rejects file."""

    def __init__(self, store: DeltaStore, run_id: str) -> None:
        self.store = store
        self.uri = f"{store.root.rstrip('/')}/{STAGING_DIR}/{RECORDED_VALUES.name}/{run_id}"
        self._local = "://" not in store.root

    def _fs(self) -> pafs.FileSystem:
        if self._local:  # delta-rs opens a local root only if it exists
            Path(self.uri).mkdir(parents=True, exist_ok=True)
        return pafs.PyFileSystem(DeltaStorageHandler(self.uri, dict(self.store.storage_options) or None))

    @staticmethod
    def _values(index: int) -> str:
        return f"shard-{index:04d}-values.parquet"

    @staticmethod
    def _rejects(index: int) -> str:
        return f"shard-{index:04d}-rejects.parquet"

    def write(self, path: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
        """Replace `path` by `batches` (streamed: one chunk in memory at a time)."""
        with self._fs().open_output_stream(path) as out, pq.ParquetWriter(out, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)

    def read(self, paths: list[str], schema: pa.Schema | None = None) -> ds.Dataset:
        return ds.dataset(paths, schema=schema, format="parquet", filesystem=self._fs())

    def write_selection(self, selected: pa.Table) -> None:
        self.write("selection.parquet", selected.schema, iter(selected.to_batches()))

    def selection(self) -> pa.Table:
        return self.read(["selection.parquet"]).to_table()

    def stage(self, index: int, values: Iterator[pa.RecordBatch], reading: Reading) -> None:
        self.write(self._values(index), RECORDED_VALUES.schema, values)
        self.write(self._rejects(index), REJECT_SCHEMA, iter(reading.refused().cast(REJECT_SCHEMA).to_batches()))

    def staged_values(self, indices: Sequence[int]) -> Iterator[pa.RecordBatch]:
        yield from self.read([self._values(i) for i in indices], RECORDED_VALUES.schema).to_batches()

    def staged_rejects(self, indices: Sequence[int]) -> pa.Table:
        return self.read([self._rejects(i) for i in indices], REJECT_SCHEMA).to_table()

    def discard(self) -> None:
        if self._local:
            shutil.rmtree(self.uri, ignore_errors=True)
        else:
            self._fs().delete_dir("")


def plan_shards(store: DeltaStore, run_id: str, selected: pa.Table, shards: int, processes: int = 1) -> list[ShardTask]:
    """Split the selected tags (`selection.SELECTED_COLUMNS`) into `shards` tasks; the selection itself is staged
    for the commit step's checks, so only WebIDs travel through Dagster's IO manager."""
    Staging(store, run_id).write_selection(selected)
    parts = sharding.split(selected["web_id"].to_pylist(), shards)
    return [ShardTask(run_id, i, shards, tuple(web_ids), processes) for i, web_ids in enumerate(parts)]


def stage_shard(config: PIWebAPIConfig, store: DeltaStore, task: ShardTask, window: DayWindow) -> StagedShard:
    """Read and validate one shard's tags for the window into its staging files (replacing an earlier attempt's)."""
    reading = Reading()
    Staging(store, task.run_id).stage(task.index, read_valid(config, task.web_ids, window, reading, task.processes),
                                      reading)
    return StagedShard(task.run_id, task.index, reading.rows, sum(t.num_rows for t in reading.rejects))


def commit_shards(
    store: DeltaStore, staged: Sequence[StagedShard], window: DayWindow, *, only_selected: bool = False
) -> tuple[Extracted, pa.Table]:
    """Replace the window's days by every staged shard in one commit; returns what was written and the selection.
    `staged` comes from one plan, so it names one staging directory. `only_selected` replaces just the selected
    tags' rows of those days (late-edit healing), leaving every other tag's."""
    run_ids = {shard.run_id for shard in staged}
    if len(run_ids) != 1:
        raise ValueError(f"staged shards of {len(run_ids)} plans; expected one")
    (run_id,) = run_ids
    staging = Staging(store, run_id)
    indices = sorted(shard.index for shard in staged)
    reading = Reading(rows=sum(shard.rows for shard in staged), rejects=[staging.staged_rejects(indices)])
    selected = staging.selection()
    only = selected["web_id"].to_pylist() if only_selected else None
    extracted = commit_values(store, staging.staged_values(indices), reading, window, run_id=run_id, only=only)
    return extracted, selected  # the staging stays until `discard_staging`: a failed commit step can run again


def discard_staging(store: DeltaStore, staged: Sequence[StagedShard]) -> None:
    for run_id in {shard.run_id for shard in staged}:
        Staging(store, run_id).discard()
