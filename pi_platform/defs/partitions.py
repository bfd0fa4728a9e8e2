"""The one partitioning of the platform: the plant's days (PI_PARTITION_TIMEZONE, default UTC), from
PI_PARTITIONS_START, including today.

`end_offset=1` makes today's (still open) day a partition so the frequent refresh schedule can rematerialise
it; a run's window is always whole local days (23 or 25 hours on a DST change), and every table's day column
holds that local day, so Delta range predicates line up with partitions exactly.
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from pi_platform import settings
from pi_platform.batch.window import DayWindow
from pi_platform.errors import PlatformError

PARTITION_TIMEZONE = settings.partition_timezone()
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.partitions_start(), timezone=PARTITION_TIMEZONE, end_offset=1
)


def run_window(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> DayWindow:
    """The plant's days the run covers (its partition key range). A range that is reversed or outside the partitions
    (possible from `dagster asset materialize --partition-range`) is a `PlatformError`, which `user_errors` turns
    into a one-line run failure before anything is written; unchecked, it failed deep inside validation or in
    Dagster's own bookkeeping, with a traceback."""
    window = context.partition_time_window
    zone = ZoneInfo(PARTITION_TIMEZONE)
    start, end = window.start.astimezone(zone).date(), window.end.astimezone(zone).date()
    last = end - timedelta(days=1)
    if end <= start:
        raise PlatformError(f"partition range {start}...{last} ends before it starts: write the earlier day first")
    first_key, last_key = daily_partitions.get_first_partition_key(), daily_partitions.get_last_partition_key()
    if start.isoformat() < str(first_key) or last.isoformat() > str(last_key):
        raise PlatformError(f"partitions {start}...{last} are outside {first_key}...{last_key} "
                            f"(PI_PARTITIONS_START to today, {PARTITION_TIMEZONE}): pick days in that range")
    return DayWindow(start, end, zone)
