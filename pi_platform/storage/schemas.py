"""pandera schemas: what a row must satisfy before it may enter each table.

Rows failing them are not dropped: `validation.split_valid` sends them to quarantine with the failed check
as the reason. Schemas that depend on the run's window (a value must fall inside the partition it is
written to) are factories taking that window.

Frames come from `pa.Table.to_pandas()`, so dtypes are checked loosely where Arrow's pandas mapping varies
(nullable ints become float, dates become objects); the Arrow schema in `tables.py` fixes the stored types.
"""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pandera.pandas as pa

_UTC_US = pd.DatetimeTZDtype("us", "UTC")
SEVERITIES = ("None", "Information", "Warning", "Minor", "Major", "Critical")


def _key(*extra: pa.Check) -> pa.Column:
    """A key column: present, non-null, non-empty. Its string type is fixed by the Arrow schema, so no
    per-element type check here (that check alone costs more than all others on a day of values)."""
    return pa.Column(checks=[pa.Check(lambda s: s.ne(""), error="empty"), *extra], nullable=False)


def _text() -> pa.Column:
    return pa.Column(nullable=True, required=False)


def _flag() -> pa.Column:
    return pa.Column(bool, nullable=False)


def _in_window(start: datetime, end: datetime) -> pa.Check:
    return pa.Check.in_range(pd.Timestamp(start), pd.Timestamp(end), include_max=False, error=f"outside [{start}, {end})")


def recorded_values(start: datetime, end: datetime) -> pa.DataFrameSchema:
    """Values of the window [start, end): keys set, flags set, at least one value column filled, unique keys."""
    return pa.DataFrameSchema(
        {
            "web_id": _key(),
            "name": _key(),
            "timestamp": pa.Column(_UTC_US, checks=_in_window(start, end), nullable=False),
            "position": pa.Column("int32", checks=pa.Check.ge(0), nullable=False),
            "value": pa.Column(float, checks=pa.Check(lambda s: ~s.abs().eq(float("inf")), error="infinite"), nullable=True),
            "value_str": _text(),
            "digital_state": _text(),
            "digital_code": pa.Column(nullable=True),
            "is_system": _flag(),
            "good": _flag(),
            "questionable": _flag(),
            "substituted": _flag(),
            "annotated": _flag(),
            "units": _text(),
        },
        checks=[
            pa.Check(
                lambda df: df["value"].notna() | df["value_str"].notna() | df["digital_state"].notna(),
                error="row carries no value (numeric, string or digital state)",
            ),
            pa.Check(lambda df: ~(df["is_system"] & df["good"]), error="system state flagged Good"),
        ],
        unique=["web_id", "timestamp", "position"],
        report_duplicates="exclude_first",
        name="recorded_values",
    )


def stream_values() -> pa.DataFrameSchema:
    """The recorded_values checks with a window wide enough for live data (no value more than a day ahead)."""
    schema = recorded_values(datetime(1970, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc) + timedelta(days=1))
    schema.name = "stream_values"
    return schema


def _snapshot(columns: dict[str, pa.Column], name: str) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {"snapshot_date": pa.Column(nullable=False), **columns},
        unique=["snapshot_date", "web_id"],
        report_duplicates="exclude_first",
        name=name,
    )


AF_ELEMENTS = _snapshot(
    {
        "web_id": _key(),
        "name": _key(),
        "path": _key(pa.Check.str_startswith("\\\\")),
        "depth": pa.Column("int32", checks=pa.Check.ge(1), nullable=False),
        "database_path": _key(),
    },
    "af_elements",
)

AF_ATTRIBUTES = _snapshot(
    {
        "web_id": _key(),
        "element_web_id": _key(),
        "element_path": _key(),
        "name": _key(),
        "path": _key(pa.Check(lambda s: s.str.contains("|", regex=False), error="attribute path without '|'")),
        "point_web_id": _text(),
    },
    "af_attributes",
)

PI_POINTS = _snapshot(
    {
        "web_id": _key(),
        "name": _key(),
        "point_type": _key(),
        "span": pa.Column(float, checks=pa.Check.ge(0), nullable=True),
        "zero": pa.Column(float, nullable=True),
        "data_server": _key(),
    },
    "pi_points",
)


def _frame_columns() -> dict[str, pa.Column]:
    return {
        "web_id": _key(),
        "name": _key(),
        "start_time": pa.Column(_UTC_US, nullable=False),
        "end_time": pa.Column(_UTC_US, nullable=True),
        "severity": pa.Column(str, checks=pa.Check.isin(SEVERITIES), nullable=True),
    }


def _frame_checks() -> list[pa.Check]:
    return [
        pa.Check(
            lambda df: df["end_time"].isna() | (df["end_time"] >= df["start_time"]),
            error="end_time before start_time",
        )
    ]


EVENT_FRAMES = pa.DataFrameSchema(
    {**_frame_columns(), "is_open": _flag()},
    checks=_frame_checks(),
    unique=["web_id"],
    report_duplicates="exclude_first",
    name="event_frames",
)

ALARMS = pa.DataFrameSchema(
    {
        **_frame_columns(),
        "source": _key(),
        "is_active": _flag(),
        "time_to_ack_s": pa.Column(float, checks=pa.Check.ge(0), nullable=True),
        "annotation_count": pa.Column("int32", checks=pa.Check.ge(0), nullable=False),
    },
    checks=_frame_checks(),
    unique=["web_id"],
    report_duplicates="exclude_first",
    name="alarms",
)

ALARM_KPIS = pa.DataFrameSchema(
    {
        "event_date": pa.Column(nullable=False, unique=True),
        "alarm_count": pa.Column("int64", checks=pa.Check.ge(0)),
        "avg_per_10min": pa.Column(float, checks=pa.Check.ge(0)),
        "peak_per_10min": pa.Column("int64", checks=pa.Check.ge(0)),
        "flood_share": pa.Column(float, checks=pa.Check.in_range(0, 1)),
    },
    name="alarm_kpis",
)


def recorded_summaries(start: datetime, end: datetime) -> pa.DataFrameSchema:
    """Summaries of the window [start, end): intervals inside it, statistics that agree with each other, one
    row per (stream, interval). Nothing PI legitimately answers may fail here (a refused row is data lost)."""
    return pa.DataFrameSchema(
        {
            "web_id": _key(),
            "name": _key(),
            "interval_start": pa.Column(_UTC_US, checks=_in_window(start, end), nullable=False),
            "interval_end": pa.Column(_UTC_US, nullable=False),
            "calculation_basis": _key(),
            "average": pa.Column(float, nullable=True),
            "minimum": pa.Column(float, nullable=True),
            "maximum": pa.Column(float, nullable=True),
            "std_dev": pa.Column(float, checks=pa.Check.ge(0), nullable=True),
            "range": pa.Column(float, checks=pa.Check.ge(0), nullable=True),
            "count": pa.Column(float, checks=pa.Check.ge(0), nullable=False),
            # 1e-6 of slack: PI divides times in floating point, 100.00000000001 is still "all good"
            "percent_good": pa.Column(float, checks=pa.Check.in_range(0, 100 + 1e-6), nullable=False),
        },
        checks=[
            pa.Check(lambda df: df["interval_end"] > df["interval_start"], error="interval_end not after interval_start"),
            pa.Check(
                lambda df: df["minimum"].isna() | df["maximum"].isna() | (df["minimum"] <= df["maximum"]),
                error="minimum above maximum",
            ),
        ],
        unique=["web_id", "interval_start"],
        report_duplicates="exclude_first",
        name="recorded_summaries",
    )

