"""`event_frames`, `alarms` and `alarm_kpis`.

Frames span days and stay open for a while, so they are upserted by WebID (a later run updates the end
time and acknowledgement of a frame an earlier run saw open) rather than replaced by day. Each run re-reads
the stored frames that have not settled, whatever day they started on, and `alarms` reports the other days
whose KPIs its changes affect (`late_kpi_days`); the next `alarm_kpis` run, of whatever day, recomputes those
whose KPIs predate the change (the schedules run it with alarms, so in the same run).
"""

from datetime import date, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pi_platform.client import PIWebAPIClient
from pi_platform.defs import checks
from pi_platform.defs.conventions import daily_asset
from pi_platform.defs.failures import user_errors
from pi_platform.batch import event_frames as ef
from pi_platform.batch.alarm_kpis import daily_kpis, late_days, needed
from pi_platform.defs.metadata import counts_chart, table_metadata
from pi_platform.batch.window import DayWindow
from pi_platform.defs.partitions import run_window
from pi_platform.defs.resources import DeltaStorageResource, PIWebAPIResource
from pi_platform.storage import DeltaStore, TableInfo, replace_quarantine, schemas, split_valid
from pi_platform.storage.tables import AF_ELEMENTS, ALARM_KPIS, ALARMS, EVENT_FRAMES, TableSpec

LATE_DAYS = "late_kpi_days"  # alarms metadata: the alarm_kpis days outside the run its changes make stale
KPI_DAYS_CHECK = "kpi_days_to_refresh"
REFRESHED = "recomputed_days"  # alarm_kpis metadata: the stale days outside the run it recomputed
LATE_CHECK = "late_changes_followed"
MAX_ALARMS_EVENTS = 10_000  # alarms materialisations read per run (one per partition run: years of runs)


def _stored(store: DeltaStore, spec: TableSpec) -> pa.Table:
    return store.read(spec.name) if store.exists(spec.name) else spec.empty()


def _upsert_validated(
    context: dg.AssetExecutionContext, store: DeltaStore, spec: TableSpec, schema, rows: pa.Table, window: DayWindow,
    *, refreshed: int, extra_metadata: dict | None = None, extra_checks: tuple[dg.AssetCheckResult, ...] = (),
) -> dg.MaterializeResult:
    split = split_valid(rows, schema, time_column="start_time")
    info = store.upsert(spec.name, split.valid, keys=spec.keys, partition_by=[spec.partition_column])
    replace_quarantine(store, split.rejects, table_name=spec.name, start=window.first, end=window.end, run_id=context.run_id)
    metadata = table_metadata(split.valid, info, spec.schema, window, time_column="start_time")
    metadata["open"] = int(pc.sum(pc.invert(pc.is_valid(split.valid["end_time"]))).as_py() or 0)
    metadata["quarantined_rows"] = split.rejects.num_rows
    metadata["refreshed_earlier_frames"] = refreshed
    metadata.update(extra_metadata or {})
    started = split.valid.filter(pc.greater_equal(split.valid["start_date"], pa.scalar(window.first)))["start_time"]
    metadata["started_per_hour"] = dg.MetadataValue.md(
        counts_chart(started, unit="hour" if len(window.days) == 1 else "day", title=f"{spec.name} started in the window")
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[*checks.standard_results(store, spec, window, row_count=False, keys_in_window=False), *extra_checks],
    )


@dg.asset(
    **daily_asset("events"),
    metadata={"table": EVENT_FRAMES.name},
    check_specs=checks.standard_specs("event_frames", row_count=False),
    description="Event frames overlapping each day, upserted by WebID: open frames are updated until they close.",
)
@user_errors
def event_frames(context: dg.AssetExecutionContext, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource) -> dg.MaterializeResult:
    window = run_window(context)
    store = delta.store()
    refresh = ef.unsettled(_stored(store, EVENT_FRAMES), window, open_column="is_open")
    items = pi_webapi.run(lambda client: ef.read_frames(client, window, pi_webapi.af_database, refresh))
    return _upsert_validated(
        context, store, EVENT_FRAMES, schemas.EVENT_FRAMES, ef.frames_table(items), window, refreshed=len(refresh)
    )


@dg.asset(
    **daily_asset("events"),
    deps=[event_frames, "af_elements"],
    metadata={"table": ALARMS.name},
    check_specs=[
        *checks.standard_specs("alarms", row_count=False),
        dg.AssetCheckSpec(
            KPI_DAYS_CHECK, asset="alarms",
            description="days outside the run whose alarm_kpis this run's alarm changes make stale "
            "(the next alarm_kpis run recomputes them)",
        ),
    ],
    description="Alarm event frames of each day (severity, acknowledgement, active, element, template) with annotations; "
    "earlier alarms still open or awaiting acknowledgement are updated too.",
)
@user_errors
def alarms(context: dg.AssetExecutionContext, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource) -> dg.MaterializeResult:
    window = run_window(context)
    store = delta.store()
    stored = _stored(store, ALARMS)
    settling = ef.unsettled(stored, window, open_column="is_active")
    frames = ef.in_window(ef.alarm_frames(store.read(EVENT_FRAMES.name)), window, also=settling)
    annotated = frames.filter(pc.fill_null(frames["is_annotated"], False))["web_id"].to_pylist()

    async def read(client: PIWebAPIClient) -> list[list[dict]]:
        return await ef.read_annotations(client, annotated)

    notes = dict(zip(annotated, pi_webapi.run(read))) if annotated else {}
    rows = ef.alarms_table(frames, notes, _element_paths(store, window))
    late = {LATE_DAYS: dg.MetadataValue.json([d.isoformat() for d in late_days(stored, rows, window.days, window.zone)])}
    check = dg.AssetCheckResult(check_name=KPI_DAYS_CHECK, passed=True, metadata=late)
    return _upsert_validated(
        context, store, ALARMS, schemas.ALARMS, rows, window, refreshed=len(settling), extra_metadata=late,
        extra_checks=(check,),
    )


def _element_paths(store: DeltaStore, window: DayWindow) -> pa.Table:
    """(web_id, path) of the AF snapshot of the window's last day; empty if af_elements has none."""
    if not store.exists(AF_ELEMENTS.name):
        return AF_ELEMENTS.empty().select(["web_id", "path"])
    return store.read_range(AF_ELEMENTS.name, AF_ELEMENTS.partition_column, window.days[-1], window.end, columns=["web_id", "path"])


@dg.asset(
    **daily_asset("events", reads_pi=False),
    deps=[alarms],
    metadata={"table": ALARM_KPIS.name, "partition_expr": ALARM_KPIS.partition_column},
    check_specs=[
        *checks.standard_specs("alarm_kpis", row_count=False),
        dg.AssetCheckSpec(
            LATE_CHECK, asset="alarm_kpis",
            description="days outside the run recomputed because later alarms runs changed their alarms",
        ),
    ],
    description=(
        "Daily alarm-management KPIs after ISA-18.2 / EEMUA 191: average and peak alarms per 10 minutes, share "
        "of 10-minute windows in flood (>10), top bad actors, chattering and standing alarms, time to acknowledge. "
        "Each run also recomputes the earlier days whose alarms changed since their KPIs were computed."
    ),
)
@user_errors
def alarm_kpis(context: dg.AssetExecutionContext, delta: DeltaStorageResource) -> dg.MaterializeResult:
    window = run_window(context)
    store = delta.store()
    late = _stale_days(context.instance, window)
    kpis, info = _write_kpis(context, store, window)
    for day in late:
        _write_kpis(context, store, DayWindow(day, day + timedelta(days=1), window.zone))
        context.log_event(
            dg.AssetMaterialization(
                context.asset_key, partition=day.isoformat(), metadata={"recomputed_after_late_changes": True}
            )
        )
    metadata = table_metadata(kpis, info, ALARM_KPIS.schema, window)
    row = kpis.slice(kpis.num_rows - 1).to_pylist()[0]
    refreshed = dg.MetadataValue.json([d.isoformat() for d in late])
    metadata.update(
        {
            "alarms": row["alarm_count"],
            "avg_per_10min": row["avg_per_10min"],
            "peak_per_10min": row["peak_per_10min"],
            "flood_share": row["flood_share"],
            "standing": row["standing_count"],
            "chattering": row["chattering_count"],
            REFRESHED: refreshed,
        }
    )
    late_check = dg.AssetCheckResult(check_name=LATE_CHECK, passed=True, metadata={REFRESHED: refreshed})
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[*checks.standard_results(store, ALARM_KPIS, window, row_count=False), late_check],
    )


def _write_kpis(context: dg.AssetExecutionContext, store: DeltaStore, window: DayWindow) -> tuple[pa.Table, TableInfo]:
    """Compute and replace the KPIs of the window's days (rows failing validation go to quarantine)."""
    # The neighbouring days' alarms (bursts across midnight) and those raised days ago and not ended before
    # the window (the standing ones); dataset filters are Kleene, so open alarms (null end) are kept.
    view_start, start, view_end = needed(window.first, window.end, window.zone)
    begun, ended = ds.field("start_time"), ds.field("end_time")
    relevant = (begun < pa.scalar(view_end)) & ((begun >= pa.scalar(view_start)) | ended.is_null() | (ended >= pa.scalar(start)))
    split = split_valid(daily_kpis(store.read(ALARMS.name, filter=relevant), window.days, window.zone), schemas.ALARM_KPIS)
    info = store.overwrite_range(
        ALARM_KPIS.name, split.valid, partition_column="event_date", start=window.first, end=window.end
    )
    replace_quarantine(store, split.rejects, table_name=ALARM_KPIS.name, start=window.first, end=window.end, run_id=context.run_id)
    return split.valid, info


def _stale_days(instance: dg.DagsterInstance, window: DayWindow) -> list[date]:
    """Days outside the window whose KPIs were computed before an alarms materialisation that listed them in
    `late_kpi_days`. Every alarm_kpis run refreshes all of them, so only alarms materialisations newer than
    the latest KPIs need reading; a day never computed is left to its own run."""
    computed = instance.get_latest_storage_id_by_partition(
        dg.AssetKey(ALARM_KPIS.name), dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    if not computed:
        return []
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=alarms.key, after_storage_id=max(computed.values())),
        limit=MAX_ALARMS_EVENTS, ascending=True,
    ).records
    stale = set()
    for record in records:
        entry = record.asset_materialization.metadata.get(LATE_DAYS) if record.asset_materialization else None
        stale.update(day for day in (entry.value if entry else []) if computed.get(day, record.storage_id) < record.storage_id)
    return sorted(d for d in map(date.fromisoformat, stale) if d not in window.days)
