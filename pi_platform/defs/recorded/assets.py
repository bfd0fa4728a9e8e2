"""`recorded_values`: every selected tag's recorded values for the partition's day(s), replaced atomically."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pi_platform.defs import checks
from pi_platform.defs.conventions import daily_asset
from pi_platform.defs.failures import user_errors
from pi_platform.defs.metadata import bar_chart, table_metadata
from pi_platform.defs.partitions import run_window
from pi_platform.batch import selection
from pi_platform.batch.recorded import extract_recorded
from pi_platform.batch.recorded_stats import window_stats
from pi_platform.defs.resources import DeltaStorageResource, PIWebAPIResource
from pi_platform.storage.tables import RECORDED_VALUES

class TagSelection(dg.Config):
    """Which tags the run reads: `batch/selection.TagFilter` as Dagster run config (UI form, descriptions)."""

    tags: list[str] = Field(default_factory=list, description="explicit tag names")
    name_filter: str = Field(selection.TagFilter.name_filter, description="PI name filter with * and ? wildcards, e.g. 'PLANT1.*'")
    af_template: str | None = Field(None, description="only tags referenced by attributes of elements of this AF template")
    attribute_category: str | None = Field(None, description="only tags referenced by attributes in this category")
    af_database: str | None = Field(None, description="AF database for the AF filters (default: all)")


TAGS_WITH_DATA = "tags_with_data"
VALUES_IN_RANGE = "values_within_zero_span"


@dg.asset(
    **daily_asset("recorded"),
    metadata={"table": RECORDED_VALUES.name, "partition_expr": RECORDED_VALUES.partition_column},
    check_specs=[
        *checks.standard_specs("recorded_values"),
        dg.AssetCheckSpec(TAGS_WITH_DATA, asset="recorded_values", description="every selected tag has values for the day"),
        dg.AssetCheckSpec(VALUES_IN_RANGE, asset="recorded_values", description="numeric values within zero..zero+span"),
    ],
    description=(
        "Recorded values of the selected tags (config: tags, name_filter, af_template, attribute_category) for "
        "each UTC day, with digital and system states, flags and same-timestamp groups. A run replaces its "
        "days in one Delta commit, so reruns and single-run backfills are idempotent."
    ),
)
@user_errors
def recorded_values(
    context: dg.AssetExecutionContext, config: TagSelection, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource
) -> dg.MaterializeResult:
    window = run_window(context)
    store = delta.store()
    selected = pi_webapi.run(lambda client: selection.resolve(client, selection.TagFilter(**config.model_dump())))
    context.log.info(f"reading {selected.num_rows} tags for {window.label}")
    extracted = extract_recorded(
        pi_webapi.client_config(), store, selected["web_id"].to_pylist(), window, run_id=context.run_id
    )
    stats = window_stats(store, window, selected)
    sample = store.table(RECORDED_VALUES.name).to_pyarrow_dataset().head(5, filter=checks.window_filter(RECORDED_VALUES, window))
    metadata = table_metadata(
        sample, extracted.info, RECORDED_VALUES.schema, window, rows=extracted.rows, time_range=(stats.oldest, stats.newest)
    )
    metadata["selected_tags"] = selected.num_rows
    metadata["tags_with_data"] = stats.per_tag.num_rows
    metadata["quarantined_rows"] = extracted.quarantined
    metadata["values_per_hour"] = dg.MetadataValue.md(_values_chart(stats.per_hour, days=len(window.days)))
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            *checks.standard_results(store, RECORDED_VALUES, window),
            tags_with_data_check(selected, stats.per_tag),
            values_in_range_check(stats.out_of_range),
        ],
    )


def _values_chart(per_hour: pa.Table, *, days: int) -> str:
    """Values per hour for a day; per day for a backfill range (a year of hours is not a picture)."""
    if days <= 2:
        return bar_chart(per_hour["hour"].to_pylist(), per_hour["rows"].to_pylist(), unit="hour", title="values per hour")
    per_day = (
        pa.table({"day": pc.floor_temporal(per_hour["hour"], unit="day"), "rows": per_hour["rows"]})
        .group_by("day")
        .aggregate([("rows", "sum")])
        .sort_by("day")
    )
    return bar_chart(per_day["day"].to_pylist(), per_day["rows_sum"].to_pylist(), unit="day", title="values per day")


def tags_with_data_check(selected: pa.Table, per_tag: pa.Table) -> dg.AssetCheckResult:
    silent = selected.filter(pc.invert(pc.is_in(selected["web_id"], value_set=per_tag["web_id"])))
    return dg.AssetCheckResult(
        check_name=TAGS_WITH_DATA,
        passed=silent.num_rows == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "selected_tags": selected.num_rows,
            "tags_without_data": silent.num_rows,
            "names": dg.MetadataValue.json(silent["name"].to_pylist()[:100]),
        },
    )


def values_in_range_check(out_of_range: pa.Table) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=VALUES_IN_RANGE,
        passed=out_of_range.num_rows == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "tags_out_of_range": out_of_range.num_rows,
            "values_out_of_range": int(sum(out_of_range["rows"].to_pylist())),
            "worst": dg.MetadataValue.md(
                out_of_range.sort_by([("rows", "descending")]).slice(0, 10).to_pandas().to_markdown(index=False)
                if out_of_range.num_rows
                else "_none_"
            ),
        },
    )
