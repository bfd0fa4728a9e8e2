"""The plant's day: [local midnight, next local midnight) in PI_PARTITION_TIMEZONE (default UTC).

Plants report by their own calendar, so every daily partition, every table's day column and every schedule
follow this zone, while every timestamp stays UTC. A local day is 23 or 25 hours on a DST change; these are
the few conversions everything shares (batch windows, quarantine dating, KPI days, the healing sensor), so a
row's day can never be computed two ways.
"""

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from pi_platform import settings


def zone() -> ZoneInfo:
    return ZoneInfo(settings.partition_timezone())


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant the plant's `day` begins. Where a DST change skips midnight itself (a few zones change at
    00:00), the offset before the change applies, which is the first instant of the day that exists."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def local_days(timestamps: pa.Array | pa.ChunkedArray, tz: ZoneInfo) -> pa.Array | pa.ChunkedArray:
    """The plant's day (date32) of each UTC timestamp, vectorised: the partition value of a row."""
    if tz.key == "UTC":
        return pc.cast(timestamps, pa.date32())
    zoned = pc.cast(pc.cast(timestamps, pa.timestamp("us", tz="UTC")), pa.timestamp("us", tz=tz.key))
    return pc.cast(pc.local_timestamp(zoned), pa.date32())
