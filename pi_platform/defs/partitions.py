"""The one partitioning of the platform: UTC days, from PI_PARTITIONS_START, including today.

`end_offset=1` makes today's (still open) day a partition so the frequent refresh schedule can rematerialise
it; a run's window is always whole UTC days, so Delta range predicates line up with partitions exactly.
"""

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import dagster as dg

DEFAULT_START = "2024-01-01"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=os.environ.get("PI_PARTITIONS_START") or DEFAULT_START, timezone="UTC", end_offset=1
)


@dataclass(frozen=True)
class Window:
    """A run's days [first, end): one day for a normal run, several for a single-run backfill."""

    first: date
    end: date

    @property
    def start_time(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=timezone.utc)

    @property
    def end_time(self) -> datetime:
        return datetime(self.end.year, self.end.month, self.end.day, tzinfo=timezone.utc)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.end - self.first).days)]

    @property
    def label(self) -> str:
        last = self.end - timedelta(days=1)
        return self.first.isoformat() if last == self.first else f"{self.first.isoformat()}..{last.isoformat()}"


def run_window(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> Window:
    """The UTC days the run covers (its partition key range)."""
    window = context.partition_time_window
    start, end = window.start.astimezone(timezone.utc), window.end.astimezone(timezone.utc)
    return Window(start.date(), end.date())
