"""Hourly compaction of `stream_values`: one commit per second makes many small files.

Runs beside the live collector. Compaction only rewrites files; if it races a collector merge the Delta
commit conflict is retried here, and the collector retries its own (its batches are idempotent).
"""

import time

import dagster as dg
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from pi_platform.defs.streaming.assets import STREAM_VALUES
from pi_platform.defs.streaming.resources import StreamCollectorResource

_ATTEMPTS = 5


@dg.op(description="Compact small files of stream_values and vacuum files older than the retention")
def compact_stream_values(context: dg.OpExecutionContext, stream_collector: StreamCollectorResource) -> dg.Output:
    uri = stream_collector.table_uri
    if not DeltaTable.is_deltatable(uri):
        context.log.info("stream_values does not exist yet: nothing to compact")
        return dg.Output(None, metadata={"files_removed": 0, "files_added": 0})
    for attempt in range(_ATTEMPTS):
        try:
            table = DeltaTable(uri)
            metrics = table.optimize.compact(target_size=128 << 20)
            vacuumed = table.vacuum(retention_hours=168, dry_run=False, enforce_retention_duration=False)
            break
        except CommitFailedError:
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(1 + attempt)
    metadata = {
        "files_removed": int(metrics.get("numFilesRemoved", 0)),
        "files_added": int(metrics.get("numFilesAdded", 0)),
        "files_vacuumed": len(vacuumed),
        "delta_version": DeltaTable(uri).version(),
    }
    context.log_event(dg.AssetObservation(asset_key=STREAM_VALUES.key, metadata=metadata))
    return dg.Output(None, metadata=metadata)


@dg.job(description="Compact and vacuum stream_values", tags={"pi_platform/area": "streaming"})
def stream_values_compaction() -> None:
    compact_stream_values()


stream_values_compaction_schedule = dg.ScheduleDefinition(
    name="stream_values_compaction_hourly",
    job=stream_values_compaction,
    cron_schedule="17 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
