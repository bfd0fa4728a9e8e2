"""`delta_maintenance`: compact and vacuum every platform table (batch and streaming): one job, two schedules.

Daily range overwrites and upserts leave one small file per partition per run and keep replaced files for
time travel; compaction bounds file counts, vacuum bounds disk use. The live `stream_values` commits about
once a second, so the same job also runs hourly for it alone. Compaction may race the live collector: a lost
commit race is retried by `DeltaStore.maintain`, and the collector retries its own idempotent batch. One
table failing does not stop the others; the op fails at the end if any did.
"""

import dagster as dg
from pydantic import Field

from pi_platform import settings
from pi_platform.defs.resources import DeltaStorageResource
from pi_platform.storage.tables import STREAM_VALUES, TABLES


class MaintenanceConfig(dg.Config):
    tables: list[str] = Field(default_factory=lambda: list(TABLES), description="tables to maintain")
    retention_hours: int = Field(168, ge=0, description="vacuum files no version newer than this needs")


@dg.op(tags={"kind": "deltalake"})
def compact_and_vacuum(context: dg.OpExecutionContext, config: MaintenanceConfig, delta: DeltaStorageResource) -> None:
    store = delta.store()
    failed = []
    for table in config.tables:
        if not store.exists(table):
            context.log.info(f"{table}: no table yet")
            continue
        try:
            result = store.maintain(table, retention_hours=config.retention_hours)
        except Exception as exc:  # noqa: BLE001 - keep maintaining the other tables, fail at the end
            context.log.error(f"{table}: {exc}")
            failed.append(table)
            continue
        context.log.info(f"{table}: {result}")
        info = store.info(table)
        context.log_event(
            dg.AssetObservation(
                asset_key=table,
                metadata={**{k: dg.MetadataValue.int(v) for k, v in result.items()}, "delta_bytes": info.size_bytes,
                          "delta_files": info.num_files},
            )
        )
    if failed:
        raise dg.Failure(f"maintenance failed for: {', '.join(failed)}")


@dg.job(description="Compact small files and vacuum old versions of every platform Delta table.")
def delta_maintenance() -> None:
    compact_and_vacuum()


delta_maintenance_schedule = dg.ScheduleDefinition(
    job=delta_maintenance,
    cron_schedule=settings.maintenance_cron(),
    execution_timezone="UTC",
    description="Daily table maintenance (PI_MAINTENANCE_CRON, default 03:30 UTC).",
)

stream_values_compaction_schedule = dg.ScheduleDefinition(
    name="stream_values_compaction_hourly",
    job=delta_maintenance,
    cron_schedule="17 * * * *",
    execution_timezone="UTC",
    run_config={"ops": {"compact_and_vacuum": {"config": {"tables": [STREAM_VALUES.name]}}}},
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly compaction of the live stream_values table.",
)

defs = dg.Definitions(jobs=[delta_maintenance], schedules=[delta_maintenance_schedule, stream_values_compaction_schedule])
