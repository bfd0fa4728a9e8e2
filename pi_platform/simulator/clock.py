"""The simulator's notion of "now": real time, real time shifted by an offset, or frozen.

Only values at or before now exist, so tests freeze the clock to make ground truth a constant, and channel
tests use real time so values keep arriving.
"""

from datetime import datetime, timedelta, timezone

from pi_platform.pitime import to_us


class Clock:
    def __init__(self, frozen: datetime | None = None, offset: timedelta = timedelta(0)) -> None:
        self.frozen = frozen.astimezone(timezone.utc) if frozen else None
        self.offset = offset

    def now(self) -> datetime:
        if self.frozen is not None:
            return self.frozen
        return datetime.now(timezone.utc) + self.offset

    def now_us(self) -> int:
        return to_us(self.now())

    def set(self, frozen: datetime | None = None, offset: timedelta | None = None) -> None:
        """Re-point the clock at run time (admin API); moving a frozen clock forward makes new values appear."""
        self.frozen = frozen.astimezone(timezone.utc) if frozen else None
        if offset is not None:
            self.offset = offset

