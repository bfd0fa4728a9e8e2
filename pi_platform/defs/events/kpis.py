"""Daily alarm-management KPIs after ISA-18.2 / EEMUA 191, from a table of alarms (pure functions).

Definitions used (per UTC day):
- alarm rate: alarms raised per 10-minute window (144 windows a day); EEMUA's "manageable" is about 1,
  "very likely to be acceptable" under 1; the peak window is reported too.
- flood: a 10-minute window with more than 10 alarms (ISA-18.2); the KPI is the share of windows in flood
  (target under 1 %).
- bad actors: the 10 sources raising most alarms and their share of all alarms (ISA-18.2 suggests the top
  10 make up no more than 1-5 %).
- chattering: a source raised 3 or more times within 60 seconds.
- standing: still active at the end of the day and raised more than 24 hours before it.
- time to acknowledge: acknowledged_date - start_time of the day's acknowledged alarms (median, p90).
"""

from datetime import date, datetime, timedelta, timezone

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from pi_platform.storage.tables import ALARM_KPIS

WINDOW = timedelta(minutes=10)
FLOOD_THRESHOLD = 10
CHATTER_COUNT, CHATTER_SPAN = 3, timedelta(seconds=60)
STANDING_AFTER = timedelta(hours=24)
TOP_N = 10


def daily_kpis(alarms: pa.Table, days: list[date]) -> pa.Table:
    """One ALARM_KPIS row per day; `alarms` must hold every alarm overlapping those days."""
    frame = alarms.select(["source", "start_time", "end_time", "is_acknowledged", "time_to_ack_s"]).to_pandas()
    return pa.Table.from_pylist([_day(frame, day) for day in days], schema=ALARM_KPIS.schema)


def _day(frame: pd.DataFrame, day: date) -> dict:
    start = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
    end = start + pd.Timedelta(days=1)
    raised = frame[(frame["start_time"] >= start) & (frame["start_time"] < end)]
    n_windows = int(pd.Timedelta(days=1) / WINDOW)
    slot = ((raised["start_time"] - start) // WINDOW).astype("int64").to_numpy()
    per_window = np.bincount(slot, minlength=n_windows)
    flood_windows = int((per_window > FLOOD_THRESHOLD).sum())
    counts = raised["source"].value_counts().rename_axis("source").reset_index(name="alarms")
    top = counts.sort_values(["alarms", "source"], ascending=[False, True]).head(TOP_N)  # ties: by name, stable
    acked = raised.loc[raised["is_acknowledged"].fillna(False).astype(bool), "time_to_ack_s"].dropna()
    open_at_end = frame["end_time"].isna() | (frame["end_time"] > end)
    standing = frame[open_at_end & (frame["start_time"] <= end - pd.Timedelta(STANDING_AFTER))]
    chattering = _chattering(raised)
    return {
        "event_date": day,
        "alarm_count": len(raised),
        "avg_per_10min": len(raised) / n_windows,
        "peak_per_10min": int(per_window.max()) if len(per_window) else 0,
        "flood_windows": flood_windows,
        "flood_share": flood_windows / n_windows,
        "top_bad_actors": orjson.dumps(
            [{"source": s, "alarms": int(c)} for s, c in zip(top["source"], top["alarms"])]
        ).decode(),
        "top_bad_actor_share": float(top["alarms"].sum() / len(raised)) if len(raised) else None,
        "chattering_sources": orjson.dumps(chattering).decode(),
        "chattering_count": len(chattering),
        "standing_count": len(standing),
        "acknowledged_count": int(len(acked)),
        "median_time_to_ack_s": float(acked.median()) if len(acked) else None,
        "p90_time_to_ack_s": float(acked.quantile(0.9)) if len(acked) else None,
    }


def _chattering(raised: pd.DataFrame) -> list[str]:
    """Sources with CHATTER_COUNT starts inside CHATTER_SPAN: compare each start with the one
    CHATTER_COUNT-1 places later of the same source (vectorised over the sorted alarms)."""
    ordered = raised.sort_values(["source", "start_time"])
    lag = CHATTER_COUNT - 1
    later = ordered["start_time"].shift(-lag)
    same = ordered["source"].shift(-lag) == ordered["source"]
    hit = same & ((later - ordered["start_time"]) <= pd.Timedelta(CHATTER_SPAN))
    return sorted(ordered.loc[hit, "source"].unique().tolist())
