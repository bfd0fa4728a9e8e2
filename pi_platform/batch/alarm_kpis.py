"""Daily alarm-management KPIs after ISA-18.2 / EEMUA 191, from a table of alarms (pure functions).

Definitions used (per plant's day, `plantday`: 23 or 25 hours on a DST change):
- alarm rate: alarms raised per 10-minute window (144 windows a day; 138 or 150 on a DST change); EEMUA's "manageable" is about 1,
  "very likely to be acceptable" under 1; the peak window is reported too.
- flood: a 10-minute window with more than 10 alarms (ISA-18.2); the KPI is the share of windows in flood
  (target under 1 %). Windows are aligned to midnight, so each one, and each flood, belongs to one day.
- bad actors: the 10 sources raising most alarms and their share of all alarms (ISA-18.2 suggests the top
  10 make up no more than 1-5 %).
- chattering: a source raised 3 or more times within 60 seconds. A burst is a chain of such triples sharing
  alarms; it is counted once, on the day its first alarm starts, with the previous and next days' alarms in
  view (a burst crossing midnight is neither lost nor counted twice).
- standing: still active at the end of the day and raised 24 hours or more before it.
- time to acknowledge: acknowledged_date - start_time of the day's acknowledged alarms (median, p90), from
  alarms whose time_to_ack_s passed its checks; acknowledged_count counts every acknowledged alarm.

A day's row depends on alarms that can change after it was computed (an end, an acknowledgement, a late
alarm, the next day's burst); `late_days` names the days a change affects so they can be recomputed.
"""

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from pi_platform import plantday
from pi_platform.storage.tables import ALARM_KPIS

WINDOW = timedelta(minutes=10)
FLOOD_THRESHOLD = 10
CHATTER_COUNT, CHATTER_SPAN = 3, timedelta(seconds=60)
STANDING_AFTER = timedelta(hours=24)
TOP_N = 10


KPI_INPUTS = ("source", "start_time", "end_time", "is_acknowledged", "time_to_ack_s")
VIEW = CHATTER_SPAN  # alarms this close to a day, before or after, belong to its bursts across midnight


def daily_kpis(alarms: pa.Table, days: list[date], zone: ZoneInfo | None = None) -> pa.Table:
    """One ALARM_KPIS row per day of `zone` (default the plant's); `alarms` must hold every alarm overlapping
    those days or started within VIEW of them (see `needed`)."""
    zone = zone or plantday.zone()
    frame = alarms.select(list(KPI_INPUTS)).to_pandas()
    return pa.Table.from_pylist([_day(frame, day, zone) for day in days], schema=ALARM_KPIS.schema)


def needed(first: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime, datetime]:
    """(view start, window start, view end) for reading the alarms the days [first, end) need: those
    started in [view start, view end), plus those started earlier and not ended before the window start."""
    start, stop = plantday.local_midnight(first, zone), plantday.local_midnight(end, zone)
    return start - VIEW, start, stop + VIEW


def late_days(before: pa.Table, after: pa.Table, days: Iterable[date], zone: ZoneInfo | None = None) -> list[date]:
    """KPI days other than `days` (the run's) that alarms written by a run change: for every alarm new in
    `after` or differing from `before` in a KPI input, the days from the one whose bursts it can join (it
    starts within VIEW after midnight) up to its end day, the run's last day if it is or was open (it may
    have been standing on every day in between), or the next day if it starts within VIEW before midnight."""
    zone = zone or plantday.zone()
    run_days = sorted(days)
    old = {r["web_id"]: r for r in before.select(["web_id", *KPI_INPUTS]).to_pylist()}
    out: set[date] = set()
    for row in after.select(["web_id", *KPI_INPUTS]).to_pylist():
        was = old.get(row["web_id"])
        if was is not None and all(was[k] == row[k] for k in KPI_INPUTS):
            continue
        start = row["start_time"]
        ends = [r["end_time"] for r in (row, was) if r is not None]
        last = max(plantday.local_day(start + VIEW, zone),
                   run_days[-1] if None in ends else max(plantday.local_day(e, zone) for e in ends))
        day = plantday.local_day(start - VIEW, zone)
        while day <= last:
            out.add(day)
            day += timedelta(days=1)
    return sorted(out - set(run_days))


def _day(frame: pd.DataFrame, day: date, zone: ZoneInfo) -> dict:
    start = pd.Timestamp(plantday.local_midnight(day, zone))
    end = pd.Timestamp(plantday.local_midnight(day + timedelta(days=1), zone))
    raised = frame[(frame["start_time"] >= start) & (frame["start_time"] < end)]
    n_windows = int((end - start) / WINDOW)
    slot = ((raised["start_time"] - start) // WINDOW).astype("int64").to_numpy()
    per_window = np.bincount(slot, minlength=n_windows)
    flood_windows = int((per_window > FLOOD_THRESHOLD).sum())
    counts = raised["source"].value_counts().rename_axis("source").reset_index(name="alarms")
    top = counts.sort_values(["alarms", "source"], ascending=[False, True]).head(TOP_N)  # ties: by name, stable
    acked = raised["is_acknowledged"].fillna(False).astype(bool)
    times = raised.loc[acked, "time_to_ack_s"].dropna()
    open_at_end = frame["end_time"].isna() | (frame["end_time"] > end)  # NaT compares False: open is explicit
    standing = frame[open_at_end & (frame["start_time"] <= end - pd.Timedelta(STANDING_AFTER))]
    chattering = _chattering(frame, start, end)
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
        "acknowledged_count": int(acked.sum()),
        "median_time_to_ack_s": float(times.median()) if len(times) else None,
        "p90_time_to_ack_s": float(times.quantile(0.9)) if len(times) else None,
    }


def _chattering(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Sources with a burst starting in [start, end). A triple is CHATTER_COUNT starts of one source inside
    CHATTER_SPAN (each start compared with the one CHATTER_COUNT-1 places later, vectorised over the sorted
    alarms); a burst starts at a triple sharing no alarm with an earlier triple of its source."""
    ordered = frame.sort_values(["source", "start_time"], kind="stable")
    lag = CHATTER_COUNT - 1
    later = ordered["start_time"].shift(-lag)
    same = ordered["source"].shift(-lag) == ordered["source"]
    hit = (same & ((later - ordered["start_time"]) <= pd.Timedelta(CHATTER_SPAN))).astype(bool)
    continues = pd.Series(False, index=ordered.index)
    for k in range(1, lag + 1):  # an earlier triple holding this start is of the same source by construction
        continues |= hit.shift(k, fill_value=False).astype(bool)
    begins = hit & ~continues & (ordered["start_time"] >= start) & (ordered["start_time"] < end)
    return sorted(ordered.loc[begins, "source"].unique().tolist())
