"""The days one batch run covers, as plain dates: the unit every batch read and every Delta range overwrite uses.

A day is the plant's day (`plantday`: PI_PARTITION_TIMEZONE, UTC by default), 23 or 25 hours on a DST change.
Day columns hold that local day while every timestamp stays UTC, so a window's bounds line up with the daily
partitions and with the range predicates the Delta writes use; a single-run backfill is a window of several days.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa

from pi_platform import plantday


@dataclass(frozen=True)
class DayWindow:
    """A run's days [first, end) in the plant's zone: one day for a normal run, several for a backfill."""

    first: date
    end: date
    zone: ZoneInfo = field(default_factory=plantday.zone)

    @property
    def start_time(self) -> datetime:
        return plantday.local_midnight(self.first, self.zone)

    @property
    def end_time(self) -> datetime:
        return plantday.local_midnight(self.end, self.zone)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.end - self.first).days)]

    def days_of(self, timestamps: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
        """The day column of rows stamped `timestamps` (UTC): their plant's day."""
        return plantday.local_days(timestamps, self.zone)

    @property
    def label(self) -> str:
        last = self.end - timedelta(days=1)
        return self.first.isoformat() if last == self.first else f"{self.first.isoformat()}..{last.isoformat()}"
