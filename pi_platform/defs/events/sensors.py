"""Late changes to alarms reach the KPIs of the days they belong to.

A day's `alarm_kpis` row is computed from alarms that keep changing after it was written: an alarm ends or is
acknowledged on a later run, arrives late, or the next day's alarms complete a burst that began before
midnight. Each `alarms` materialisation records the other days its changes affect (`late_kpi_days`, also
shown by its `kpi_days_to_refresh` check); this sensor reads those materialisations in order and asks for a
run of `alarm_kpis` for each affected day whose KPIs were last computed before that change (a day never
computed is computed when its turn comes; one computed since already saw the change). The cursor is the storage id of the last materialisation read, so nothing is missed or
requested twice.
"""

import dagster as dg
from dagster._core.events import DagsterEventType

from pi_platform.defs.events.assets import LATE_DAYS, LATE_TAG, alarm_kpis, alarms
from pi_platform.defs.partitions import daily_partitions

MAX_EVENTS_PER_TICK = 200

alarm_kpis_refresh_job = dg.define_asset_job(
    "alarm_kpis_refresh", selection=dg.AssetSelection.assets(alarm_kpis), partitions_def=daily_partitions,
    description="alarm_kpis of one day, recomputed after later changes to its alarms.",
)


@dg.sensor(
    job=alarm_kpis_refresh_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Recompute the alarm_kpis of days whose alarms later runs changed (late_kpi_days of alarms).",
)
def alarm_kpis_late_changes(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=alarms.key, after_storage_id=after), limit=MAX_EVENTS_PER_TICK, ascending=True
    ).records
    if not records:
        return dg.SensorResult(skip_reason="no new alarms materialisations")
    computed = context.instance.get_latest_storage_id_by_partition(
        alarm_kpis.key, DagsterEventType.ASSET_MATERIALIZATION
    )  # day -> storage id of its latest KPIs
    stale: dict[str, str] = {}  # day -> the alarms run whose changes made it stale
    for record in records:
        entry = record.asset_materialization.metadata.get(LATE_DAYS) if record.asset_materialization else None
        for day in entry.value if entry is not None else []:
            if computed.get(day, record.storage_id) < record.storage_id:
                stale[day] = record.run_id
    cursor = str(records[-1].storage_id)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"alarm_kpis_late:{day}:{cursor}", partition_key=day, tags={LATE_TAG: run_id})
            for day, run_id in sorted(stale.items())
        ],
        cursor=cursor,
    )
