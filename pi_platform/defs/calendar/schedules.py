"""Schedules: yesterday once late data has arrived, and a frequent refresh of today.

PI data keeps arriving after midnight (buffered interfaces, manual entry), so the previous day is read
`PI_DAILY_LAG_MINUTES` (default 60) after the plant's midnight: both crons run in PI_PARTITION_TIMEZONE, so
the daily run follows local midnight through DST changes, and "yesterday" and "today" are the plant's days.
Today's partition exists (end_offset=1) and is re-read every `PI_TODAY_REFRESH_CRON` (default every 15
minutes) for near-live tables.
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from pi_platform import settings
from pi_platform.defs.partitions import PARTITION_TIMEZONE

# What `pi-platform up` backfills on a first start: the raw tables every other asset and viewer page builds on.
FIRST_RUN_ASSETS = ["af_elements", "af_attributes", "pi_points", "recorded_values", "event_frames", "alarms", "alarm_kpis"]
# The daily job adds the hourly summaries; interpolated_values stays on demand (a grid the user chooses).
DAILY_ASSETS = [*FIRST_RUN_ASSETS, "recorded_summaries"]
TODAY_ASSETS = ["recorded_values", "event_frames", "alarms", "alarm_kpis"]

daily_job = dg.define_asset_job(
    "pi_daily", selection=dg.AssetSelection.assets(*DAILY_ASSETS),
    description="The daily PI tables and their hourly summaries for one of the plant's days (PI_PARTITION_TIMEZONE).",
)
today_job = dg.define_asset_job(
    "pi_today", selection=dg.AssetSelection.assets(*TODAY_ASSETS),
    description="Values, event frames and alarms of today so far.",
)


LAG = timedelta(minutes=settings.daily_lag_minutes())
ZONE = ZoneInfo(PARTITION_TIMEZONE)


@dg.schedule(
    job=daily_job,
    cron_schedule=f"{LAG.seconds // 60 % 60} {LAG.seconds // 3600} * * *",
    execution_timezone=PARTITION_TIMEZONE,
    description="Yesterday's partition, PI_DAILY_LAG_MINUTES after the plant's midnight (PI_PARTITION_TIMEZONE).",
)
def previous_day_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = ((context.scheduled_execution_time.astimezone(ZONE) - LAG).date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=f"pi_daily:{day}", partition_key=day)


@dg.schedule(
    job=today_job,
    cron_schedule=settings.today_refresh_cron(),
    execution_timezone=PARTITION_TIMEZONE,
    description="Today's partition, refreshed on PI_TODAY_REFRESH_CRON (default every 15 minutes, in PI_PARTITION_TIMEZONE).",
)
def today_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    moment = context.scheduled_execution_time.astimezone(ZONE)
    return dg.RunRequest(run_key=f"pi_today:{moment.isoformat()}", partition_key=moment.date().isoformat())


defs = dg.Definitions(jobs=[daily_job, today_job], schedules=[previous_day_schedule, today_refresh_schedule])
