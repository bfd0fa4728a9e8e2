"""Hourly compaction of `stream_values`: one commit per second makes many small files.

Runs beside the live collector. Compaction only rewrites files; if it races a collector merge the Delta
commit conflict is retried by `DeltaStore.maintain`, and the collector retries its own (its batches are
idempotent).
"""

import dagster as dg

from pi_platform.defs.streaming.assets import STREAM_VALUES
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.streaming.sink import STREAM_TABLE


@dg.op(description="Compact small files of stream_values and vacuum files older than the retention")
def compact_stream_values(context: dg.OpExecutionContext, stream_collector: StreamCollectorResource) -> dg.Output:
    store = stream_collector.store
    if not store.exists(STREAM_TABLE):
        context.log.info("stream_values does not exist yet: nothing to compact")
        return dg.Output(None, metadata={"files_removed": 0, "files_added": 0})
    outcome = store.maintain(STREAM_TABLE, retention_hours=168, target_size=128 << 20)
    metadata = {
        "files_removed": outcome["files_removed"],
        "files_added": outcome["files_added"],
        "files_vacuumed": outcome["files_vacuumed"],
        "delta_version": outcome["version"],
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
