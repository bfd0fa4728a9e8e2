"""`event_frames`, `alarms` and `alarm_kpis`.

Frames span days and stay open for a while, so they are upserted by WebID (a later run updates the end
time and acknowledgement of a frame an earlier run saw open) rather than replaced by day.
"""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pi_platform.client import PIWebAPIClient
from pi_platform.defs import checks
from pi_platform.defs.conventions import daily_asset
from pi_platform.defs.failures import user_errors
from pi_platform.defs.events import frames as ef
from pi_platform.defs.events.kpis import daily_kpis
from pi_platform.defs.metadata import counts_chart, table_metadata
from pi_platform.defs.partitions import Window, run_window
from pi_platform.defs.resources import DeltaStorageResource, PIWebAPIResource
from pi_platform.storage import DeltaStore, replace_quarantine, schemas, split_valid
from pi_platform.storage.tables import AF_ELEMENTS, ALARM_KPIS, ALARMS, EVENT_FRAMES, TableSpec



def _upsert_validated(
    context: dg.AssetExecutionContext, store: DeltaStore, spec: TableSpec, schema, rows: pa.Table, window: Window
) -> dg.MaterializeResult:
    split = split_valid(rows, schema, time_column="start_time")
    info = store.upsert(spec.name, split.valid, keys=spec.keys, partition_by=[spec.partition_column])
    replace_quarantine(store, split.rejects, table_name=spec.name, start=window.first, end=window.end, run_id=context.run_id)
    metadata = table_metadata(split.valid, info, spec.schema, window, time_column="start_time")
    metadata["open"] = int(pc.sum(pc.invert(pc.is_valid(split.valid["end_time"]))).as_py() or 0)
    metadata["quarantined_rows"] = split.rejects.num_rows
    started = split.valid.filter(pc.greater_equal(split.valid["start_date"], pa.scalar(window.first)))["start_time"]
    metadata["started_per_hour"] = dg.MetadataValue.md(
        counts_chart(started, unit="hour" if len(window.days) == 1 else "day", title=f"{spec.name} started in the window")
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=checks.standard_results(store, spec, window, row_count=False, keys_in_window=False),
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
    items = pi_webapi.run(lambda client: ef.read_frames(client, window, pi_webapi.asset_database))
    return _upsert_validated(context, delta.store(), EVENT_FRAMES, schemas.EVENT_FRAMES, ef.frames_table(items), window)


@dg.asset(
    **daily_asset("events"),
    deps=[event_frames, "af_elements"],
    metadata={"table": ALARMS.name},
    check_specs=checks.standard_specs("alarms", row_count=False),
    description="Alarm event frames of each day (severity, acknowledgement, active, element, template) with annotations.",
)
@user_errors
def alarms(context: dg.AssetExecutionContext, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource) -> dg.MaterializeResult:
    window = run_window(context)
    store = delta.store()
    frames = ef.alarm_frames(ef.overlapping(store.read(EVENT_FRAMES.name), window))
    annotated = frames.filter(pc.fill_null(frames["is_annotated"], False))["web_id"].to_pylist()

    async def read(client: PIWebAPIClient) -> list[list[dict]]:
        return await ef.read_annotations(client, annotated)

    notes = dict(zip(annotated, pi_webapi.run(read))) if annotated else {}
    return _upsert_validated(context, store, ALARMS, schemas.ALARMS, ef.alarms_table(frames, notes, _element_paths(store, window)), window)


def _element_paths(store: DeltaStore, window: Window) -> pa.Table:
    """(web_id, path) of the AF snapshot of the window's last day; empty if af_elements has none."""
    if not store.exists(AF_ELEMENTS.name):
        return AF_ELEMENTS.empty().select(["web_id", "path"])
    return store.read_range(AF_ELEMENTS.name, AF_ELEMENTS.partition_column, window.days[-1], window.end, columns=["web_id", "path"])


@dg.asset(
    **daily_asset("events", reads_pi=False),
    deps=[alarms],
    metadata={"table": ALARM_KPIS.name, "partition_expr": ALARM_KPIS.partition_column},
    check_specs=checks.standard_specs("alarm_kpis", row_count=False),
    description=(
        "Daily alarm-management KPIs after ISA-18.2 / EEMUA 191: average and peak alarms per 10 minutes, share "
        "of 10-minute windows in flood (>10), top bad actors, chattering and standing alarms, time to acknowledge."
    ),
)
@user_errors
def alarm_kpis(context: dg.AssetExecutionContext, delta: DeltaStorageResource) -> dg.MaterializeResult:
    window = run_window(context)
    store = delta.store()
    # Alarms overlapping the window include those raised days ago and still open: the standing ones.
    alarms_seen = ef.overlapping(store.read(ALARMS.name, filter=ds.field("start_time") < pa.scalar(window.end_time)), window)
    kpis = daily_kpis(alarms_seen, window.days)
    split = split_valid(kpis, schemas.ALARM_KPIS)
    info = store.overwrite_range(
        ALARM_KPIS.name, split.valid, partition_column="event_date", start=window.first, end=window.end
    )
    replace_quarantine(store, split.rejects, table_name=ALARM_KPIS.name, start=window.first, end=window.end, run_id=context.run_id)
    metadata = table_metadata(split.valid, info, ALARM_KPIS.schema, window)
    row = kpis.slice(kpis.num_rows - 1).to_pylist()[0]
    metadata.update(
        {
            "alarms": row["alarm_count"],
            "avg_per_10min": row["avg_per_10min"],
            "peak_per_10min": row["peak_per_10min"],
            "flood_share": row["flood_share"],
            "standing": row["standing_count"],
            "chattering": row["chattering_count"],
        }
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=checks.standard_results(store, ALARM_KPIS, window, row_count=False),
    )
