"""`delta_maintenance`: compact and vacuum every platform table, on a daily schedule.

Daily range overwrites and upserts leave one small file per partition per run and keep replaced files for
time travel; compaction bounds file counts, vacuum bounds disk use. One table failing does not stop the
others; the op fails at the end if any did.
"""

import os

import dagster as dg
from pydantic import Field

from pi_platform.defs.resources import DeltaStorageResource
from pi_platform.storage.tables import TABLES


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
    cron_schedule=os.environ.get("PI_MAINTENANCE_CRON") or "30 3 * * *",
    execution_timezone="UTC",
    description="Daily table maintenance (PI_MAINTENANCE_CRON, default 03:30 UTC).",
)

defs = dg.Definitions(jobs=[delta_maintenance], schedules=[delta_maintenance_schedule])
