"""`recorded_summaries` and `interpolated_values`: what PI computes per interval for the selected tags, per day.

Both read PI's own endpoints (streamsets/summary, streamsets/interpolated) so the lake shows the numbers PI
clients show; a run replaces its days in one Delta commit, so reruns and single-run backfills are idempotent.
"""

import math
from datetime import timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pi_platform import settings
from pi_platform.batch import selection
from pi_platform.batch.recorded import Extracted
from pi_platform.batch.summaries import calculation_basis, extract_interpolated, extract_summaries, interval
from pi_platform.batch.window import DayWindow
from pi_platform.defs import checks
from pi_platform.defs.conventions import daily_asset
from pi_platform.defs.failures import user_errors
from pi_platform.defs.metadata import table_metadata
from pi_platform.defs.partitions import run_window
from pi_platform.defs.resources import DeltaStorageResource, PIWebAPIResource
from pi_platform.defs.selection import TagSelection
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import INTERPOLATED_VALUES, RECORDED_SUMMARIES, TableSpec

EVERY_INTERVAL = "every_tag_every_interval"
EVERY_STEP = "every_tag_every_step"


class SummaryConfig(TagSelection):
    """Which tags, and how PI summarises them."""

    interval: str = Field(settings.summary_interval(),
                          description="PI summaryDuration, e.g. 1h, 15m (PI_SUMMARY_INTERVAL)")
    calculation_basis: str = Field(
        settings.summary_calculation_basis(),
        description="PI calculationBasis: TimeWeighted, EventWeighted, TimeWeightedContinuous, TimeWeightedDiscrete, "
        "EventWeightedExcludeMostRecentEvent, ... (PI_SUMMARY_CALCULATION_BASIS)",
    )


class InterpolationConfig(TagSelection):
    """Which tags, and the grid PI interpolates them on."""

    interval: str = Field(settings.interpolation_interval(),
                          description="PI interval, e.g. 1h, 10m (PI_INTERPOLATION_INTERVAL)")


@dg.asset(
    **daily_asset("summaries"),
    metadata={"table": RECORDED_SUMMARIES.name, "partition_expr": RECORDED_SUMMARIES.partition_column},
    check_specs=[
        *checks.standard_specs("recorded_summaries"),
        dg.AssetCheckSpec(EVERY_INTERVAL, asset="recorded_summaries",
                          description="every selected tag has one summary row per interval of the day"),
    ],
    description=(
        "PI's own summaries (streamsets/summary) of the selected tags per interval (config `interval`, default "
        "PI_SUMMARY_INTERVAL = 1h) of each day: average, minimum, maximum, std dev, range and percent good with the "
        "configured calculation basis (default TimeWeighted: stepped tags held, continuous tags interpolated, "
        "bad values excluded and counted against percent good), and the count of good events."
    ),
)
@user_errors
def recorded_summaries(
    context: dg.AssetExecutionContext, config: SummaryConfig, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource
) -> dg.MaterializeResult:
    window = run_window(context)
    step, basis = interval(config.interval, "interval"), calculation_basis(config.calculation_basis)
    store = delta.store()
    selected = _selected(pi_webapi, config)
    context.log.info(f"summarising {selected.num_rows} tags for {window.label}: {config.interval}, {basis}")
    extracted = extract_summaries(pi_webapi.client_config(), store, selected["web_id"].to_pylist(), window,
                                  duration=step, basis=basis, run_id=context.run_id)
    metadata = _metadata(store, RECORDED_SUMMARIES, window, extracted, "interval_start")
    metadata.update(interval=config.interval, calculation_basis=basis, selected_tags=selected.num_rows)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            *checks.standard_results(store, RECORDED_SUMMARIES, window),
            _coverage_check(store, RECORDED_SUMMARIES, window, selected, step, EVERY_INTERVAL),
        ],
    )


@dg.asset(
    **daily_asset("summaries"),
    metadata={"table": INTERPOLATED_VALUES.name, "partition_expr": INTERPOLATED_VALUES.partition_column},
    check_specs=[
        *checks.standard_specs("interpolated_values"),
        dg.AssetCheckSpec(EVERY_STEP, asset="interpolated_values",
                          description="every selected tag has one value per interval step of the day"),
    ],
    description=(
        "PI's interpolated values (streamsets/interpolated) of the selected tags every `interval` (default "
        "PI_INTERPOLATION_INTERVAL = 1h) of each day: a regular grid for analytics, with PI's own interpolation "
        "(linear for continuous tags, held for stepped ones, system states where PI has no good value)."
    ),
)
@user_errors
def interpolated_values(
    context: dg.AssetExecutionContext, config: InterpolationConfig, pi_webapi: PIWebAPIResource,
    delta: DeltaStorageResource,
) -> dg.MaterializeResult:
    window = run_window(context)
    step = interval(config.interval, "interval")
    store = delta.store()
    selected = _selected(pi_webapi, config)
    context.log.info(f"interpolating {selected.num_rows} tags every {config.interval} for {window.label}")
    extracted = extract_interpolated(pi_webapi.client_config(), store, selected["web_id"].to_pylist(), window,
                                     step=step, run_id=context.run_id)
    metadata = _metadata(store, INTERPOLATED_VALUES, window, extracted, "timestamp")
    metadata.update(interval=config.interval, selected_tags=selected.num_rows)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            *checks.standard_results(store, INTERPOLATED_VALUES, window),
            _coverage_check(store, INTERPOLATED_VALUES, window, selected, step, EVERY_STEP),
        ],
    )


def _selected(pi_webapi: PIWebAPIResource, config: TagSelection) -> pa.Table:
    chosen = config.tag_filter()
    return pi_webapi.run(lambda client: selection.resolve(client, chosen))


def _metadata(store: DeltaStore, spec: TableSpec, window: DayWindow, extracted: Extracted,
              time_column: str) -> dict[str, object]:
    rows = store.read(spec.name, columns=[time_column], filter=checks.window_filter(spec, window))
    oldest = pc.min(rows[time_column]).as_py() if rows.num_rows else None
    newest = pc.max(rows[time_column]).as_py() if rows.num_rows else None
    sample = store.table(spec.name).to_pyarrow_dataset().head(5, filter=checks.window_filter(spec, window))
    metadata = table_metadata(sample, extracted.info, spec.schema, window, rows=extracted.rows,
                              time_range=(oldest, newest))
    metadata["quarantined_rows"] = extracted.quarantined
    return metadata


def _coverage_check(store: DeltaStore, spec: TableSpec, window: DayWindow, selected: pa.Table, step: timedelta,
                    name: str) -> dg.AssetCheckResult:
    """Read back: each selected tag has exactly one row per step of the window (PI answers every interval)."""
    expected = math.ceil((window.end_time - window.start_time) / step)
    rows = store.read(spec.name, columns=["web_id"], filter=checks.window_filter(spec, window))
    per_tag = rows.group_by("web_id").aggregate([("web_id", "count")])
    counts = dict(zip(per_tag["web_id"].to_pylist(), per_tag["web_id_count"].to_pylist()))
    short = [n for w, n in zip(selected["web_id"].to_pylist(), selected["name"].to_pylist()) if counts.get(w) != expected]
    return dg.AssetCheckResult(
        check_name=name,
        passed=not short,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"expected_rows_per_tag": expected, "selected_tags": selected.num_rows, "tags_incomplete": len(short),
                  "names": dg.MetadataValue.json(short[:100])},
    )
