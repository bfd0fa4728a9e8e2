"""The days one batch run covers, as plain dates: the unit every batch read and every Delta range overwrite uses.

A run is always whole UTC days, so a window's bounds line up with the daily partitions and with the range
predicates the Delta writes use; a single-run backfill is simply a window of several days.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone


@dataclass(frozen=True)
class DayWindow:
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
