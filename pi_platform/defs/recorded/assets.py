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
from pi_platform import settings
from pi_platform.batch import recorded_shards, selection
from pi_platform.batch.recorded_shards import ShardTask, StagedShard
from pi_platform.batch.recorded_stats import window_stats
from pi_platform.defs.resources import DeltaStorageResource, PIWebAPIResource
from pi_platform.defs.selection import TagSelection
from pi_platform.storage.tables import RECORDED_VALUES

class RecordedConfig(TagSelection):
    """recorded_values' run config: the tag selection, how many shards read it, and with how many processes each."""

    shards: int | None = Field(
        None, ge=1, description="tag shards read as separate steps, spread by the executor over processes or pods "
        "(default: PI_RECORDED_SHARDS, else 1)",
    )
    processes: int | None = Field(
        None, ge=1, description="processes each shard step uses: N-1 read PI while the step validates and stages "
        "(default: PI_RECORDED_PROCESSES, else 1; 2 uses both cores of a 2-core machine)",
    )


TAGS_WITH_DATA = "tags_with_data"
# Run tag: "selected_tags" replaces only the selected tags' rows of the run's days (every other tag's stay);
# late-edit healing (defs/healing) sets it with an explicit tag list. Without it a run replaces whole days.
REPLACE_TAG, REPLACE_SELECTED = "pi_platform/replace", "selected_tags"
VALUES_IN_RANGE = "values_within_zero_span"


SHARD_RETRIES = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
CHECK_SPECS = [
    *checks.standard_specs("recorded_values"),
    dg.AssetCheckSpec(TAGS_WITH_DATA, asset="recorded_values", description="every selected tag has values for the day"),
    dg.AssetCheckSpec(VALUES_IN_RANGE, asset="recorded_values", description="numeric values within zero..zero+span"),
]
# A graph asset names its check outputs `<asset>_<check>`; the commit op yields each under that name.
_CHECK_OUTS = {f"recorded_values_{spec.name}": spec for spec in CHECK_SPECS}
_ASSET_ARGS = daily_asset("recorded")
_PI_POOL = _ASSET_ARGS.pop("pool")
_FRESHNESS = _ASSET_ARGS.pop("freshness_policy")  # graph assets take it through their spec (below)


@dg.op(out=dg.DynamicOut(ShardTask), pool=_PI_POOL)
@user_errors
def plan_recorded_shards(
    context: dg.OpExecutionContext, config: RecordedConfig, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource
) -> list[dg.DynamicOutput]:
    """Resolve the tag selection once and fan it out: one step per shard (stable: by a hash of each WebID)."""
    window = run_window(context)  # a bad partition range fails here, before PI is asked anything
    tag_filter = config.tag_filter()
    selected = pi_webapi.run(lambda client: selection.resolve(client, tag_filter))
    count = config.shards or settings.recorded_shards()
    processes = config.processes or settings.recorded_processes()
    tasks = recorded_shards.plan_shards(delta.store(), context.run_id, selected, count, processes)
    context.log.info(f"reading {selected.num_rows} tags for {window.label} in {count} shard(s) of {processes} "
                     f"process(es) each: {', '.join(str(len(t.web_ids)) for t in tasks)} tags")
    return [dg.DynamicOutput(task, mapping_key=f"shard_{task.index}") for task in tasks]


@dg.op(pool=_PI_POOL, retry_policy=SHARD_RETRIES)
@user_errors
def extract_recorded_shard(
    context: dg.OpExecutionContext, task: ShardTask, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource
) -> StagedShard:
    """Read one shard's tags into the run's staging area; a retry rewrites the same files."""
    window = run_window(context)
    staged = recorded_shards.stage_shard(pi_webapi.client_config(), delta.store(), task, window)
    context.log.info(f"{task.label}: staged {staged.rows} values of {len(task.web_ids)} tags "
                     f"({staged.rejects} refused)")
    return staged


# A lost commit race (another run rewriting the table) or a store hiccup: the commit re-reads the staging and
# runs again; it is idempotent (a range overwrite), and PI is not asked again.
COMMIT_RETRIES = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@dg.op(out={"result": dg.Out(dg.Nothing), **{name: dg.Out(dg.Nothing) for name in _CHECK_OUTS}},
       retry_policy=COMMIT_RETRIES)
def commit_recorded_day(context: dg.OpExecutionContext, staged: list[StagedShard], delta: DeltaStorageResource):
    """Replace the run's days by every staged shard in one Delta commit, then report and check what was committed."""
    result = _commit(context, staged, delta)
    yield dg.Output(None, "result", metadata=result.metadata)
    yield from result.check_results


@user_errors
def _commit(context: dg.OpExecutionContext, staged: list[StagedShard], delta: DeltaStorageResource) -> dg.MaterializeResult:
    window = run_window(context)
    store = delta.store()
    only_selected = context.run.tags.get(REPLACE_TAG) == REPLACE_SELECTED
    extracted, selected = recorded_shards.commit_shards(store, staged, window, only_selected=only_selected)
    stats = window_stats(store, window, selected)
    sample = store.table(RECORDED_VALUES.name).to_pyarrow_dataset().head(5, filter=checks.window_filter(RECORDED_VALUES, window))
    metadata = table_metadata(
        sample, extracted.info, RECORDED_VALUES.schema, window, rows=extracted.rows, time_range=(stats.oldest, stats.newest)
    )
    metadata["selected_tags"] = selected.num_rows
    metadata["tags_with_data"] = stats.per_tag.num_rows
    metadata["quarantined_rows"] = extracted.quarantined
    metadata["shards"] = len(staged)
    metadata["replaced"] = "selected tags" if only_selected else "whole days"
    metadata["values_per_hour"] = dg.MetadataValue.md(_values_chart(stats.per_hour, days=len(window.days)))
    check_results = [
        *checks.standard_results(store, RECORDED_VALUES, window),
        tags_with_data_check(selected, stats.per_tag),
        values_in_range_check(stats.out_of_range),
    ]
    recorded_shards.discard_staging(store, staged)  # last: until here a retry of this step finds the staging
    return dg.MaterializeResult(metadata=metadata, check_results=check_results)


@dg.graph_asset(
    **_ASSET_ARGS,
    metadata={"table": RECORDED_VALUES.name, "partition_expr": RECORDED_VALUES.partition_column},
    check_specs=CHECK_SPECS,
    # The run config keeps the shape of a plain asset's: {"ops": {"recorded_values": {"config": {...}}}}.
    config=dg.ConfigMapping(config_fn=lambda tags: {"plan_recorded_shards": {"config": tags}},
                            config_schema=RecordedConfig.to_config_schema()),
    description=(
        "Recorded values of the selected tags (config: tags, name_filter, af_template, attribute_category) for "
        "each of the plant's days (PI_PARTITION_TIMEZONE), with digital and system states, flags and same-timestamp groups. A run replaces its "
        "days in one Delta commit, so reruns and single-run backfills are idempotent. Config `shards` (default "
        "PI_RECORDED_SHARDS) splits the tags into shards read as separate steps (retried alone), committed together; "
        "`processes` (PI_RECORDED_PROCESSES) lets each step read PI in that many processes less one."
    ),
)
def recorded_values():
    outputs = commit_recorded_day(plan_recorded_shards().map(extract_recorded_shard).collect())
    return outputs._asdict()


recorded_values = recorded_values.map_asset_specs(lambda spec: spec.replace_attributes(freshness_policy=_FRESHNESS))


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
