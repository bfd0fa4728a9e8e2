"""The one partitioning of the platform: UTC days, from PI_PARTITIONS_START, including today.

`end_offset=1` makes today's (still open) day a partition so the frequent refresh schedule can rematerialise
it; a run's window is always whole UTC days, so Delta range predicates line up with partitions exactly.
"""

from datetime import timezone

import dagster as dg

from pi_platform import settings
from pi_platform.batch.window import DayWindow

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.partitions_start(), timezone="UTC", end_offset=1
)


def run_window(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> DayWindow:
    """The UTC days the run covers (its partition key range)."""
    window = context.partition_time_window
    start, end = window.start.astimezone(timezone.utc), window.end.astimezone(timezone.utc)
    return DayWindow(start.date(), end.date())
