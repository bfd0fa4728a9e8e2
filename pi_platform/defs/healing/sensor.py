"""`late_edits_sensor`: poll PI's Stream Updates, re-materialise exactly the tag-days operators edited.

Every tick (PI_HEALING_INTERVAL_SECONDS) polls the markers of every tag recorded_values reads (the default
selection, re-resolved hourly so new tags are watched), maps the changes PI reports to the plant's days and
requests one run per changed day that was already materialised, within PI_HEALING_LOOKBACK_DAYS and before
today (today is re-read by its refresh schedule). The run reads only that day's changed tags (`tags` config)
and replaces only their rows (run tag `pi_platform/replace=selected_tags`), so an edit costs one tag-day read,
and a day without edits is never read again. The markers live in the sensor cursor (stored by Dagster); the
first tick only registers them, so edits made before the sensor ever ran are not followed.
"""

import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from pi_platform import settings
from pi_platform.batch import healing, selection
from pi_platform.client import PIWebAPIClient
from pi_platform.defs.healing.check import CHANGED_TAGS, HEALING, HEALING_TAG, RECORDED, evaluate
from pi_platform.defs.partitions import PARTITION_TIMEZONE
from pi_platform.defs.recorded.assets import REPLACE_SELECTED, REPLACE_TAG
from pi_platform.defs.resources import PIWebAPIResource
from pi_platform.errors import user_message

RESOLVE_EVERY_S = 3600.0  # how often the tag selection is re-resolved (new tags get registered)
ZONE = ZoneInfo(PARTITION_TIMEZONE)


def heal_requests(changed: dict[date, list[str]], names: dict[str, str], materialized: set[str]) -> list[dg.RunRequest]:
    """One run per changed day already materialised, reading and replacing only that day's changed tags."""
    requests = []
    for day, web_ids in sorted(changed.items()):
        tags = sorted({names[w] for w in web_ids if w in names})
        if day.isoformat() not in materialized or not tags:
            continue  # never read: its own run reads it whole
        requests.append(dg.RunRequest(
            partition_key=day.isoformat(),
            asset_selection=[RECORDED],
            run_config={"ops": {"recorded_values": {"config": {"tags": tags}}}},
            tags={HEALING_TAG: HEALING, CHANGED_TAGS: str(len(tags)), REPLACE_TAG: REPLACE_SELECTED},
        ))
    return requests


@dg.sensor(
    name="late_edits_sensor",
    asset_selection=[RECORDED],
    minimum_interval_seconds=settings.healing_interval_seconds(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Follows PI Stream Updates and re-reads exactly the tag-days whose history was edited "
    "(PI_HEALING_INTERVAL_SECONDS, PI_HEALING_LOOKBACK_DAYS); evaluates late_edits_applied.",
)
def late_edits_sensor(context: dg.SensorEvaluationContext, pi_webapi: PIWebAPIResource) -> dg.SensorResult | dg.SkipReason:
    watch = healing.Watch.load(context.cursor)
    resolve = not watch.names or time.time() - watch.resolved_at >= RESOLVE_EVERY_S

    async def work(client: PIWebAPIClient) -> tuple[healing.Polled, datetime]:
        selected = await selection.resolve(client, selection.TagFilter()) if resolve else None
        return await healing.poll(client, watch, selected), await client.server_time()

    try:
        polled, server_now = pi_webapi.run(work)
    except Exception as exc:  # noqa: BLE001 - user-fixable problems are one line; bugs keep their traceback
        message = user_message(exc)
        if message is None:
            raise
        context.log.warning(f"late edits not polled: {message}")  # the markers stay: the next tick catches up
        return dg.SkipReason(f"PI not polled: {message}")
    if resolve:
        watch.resolved_at = time.time()
    today = server_now.astimezone(ZONE).date()  # PI's clock decides what "today" and "3 days old" mean
    first = today - timedelta(days=settings.healing_lookback_days())
    changed = healing.tag_days(polled.changes, ZONE, first, today)
    materialized = context.instance.get_materialized_partitions(RECORDED)
    requests = heal_requests(changed, watch.names, materialized)
    context.log.info(
        f"{polled.changes.num_rows} change(s) from PI for {len(watch.markers)} watched tag(s); "
        f"re-reading {sum(int(r.tags[CHANGED_TAGS]) for r in requests)} tag-day(s) on {len(requests)} day(s)"
        + (f"; registered {polled.registered}" if polled.registered else "")
        + (f"; {len(polled.lost)} marker(s) lost by the server (edits made meanwhile are unknown)" if polled.lost else "")
        + (f"; PI refused {len(polled.refused)} tag(s), e.g. {next(iter(polled.refused.values()))}" if polled.refused else "")
    )
    return dg.SensorResult(run_requests=requests, cursor=watch.dump(), asset_events=[evaluate(context.instance)])
