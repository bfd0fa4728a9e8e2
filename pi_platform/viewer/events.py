"""Event frames for the timeline (filtered by time, template, severity and element) and the daily alarm KPIs.

A frame is shown when it overlaps the asked window; frames are partitioned by start day, so the scan prunes
every partition after the window and filters the rest on start/end time. Each frame carries its primary
element's path from the newest `af_elements` snapshot (looked up for the page's elements only), which is the
lane it is drawn in.
"""

import json
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import AF_ELEMENTS, ALARM_KPIS, EVENT_FRAMES
from pi_platform.value_columns import TIMESTAMP
from pi_platform.viewer.lake import BadRequest, Page, latest_partition, scan

FRAME_COLUMNS = ["web_id", "name", "template_name", "severity", "start_time", "end_time", "is_open",
                 "can_be_acknowledged", "is_acknowledged", "acknowledged_by", "primary_element_web_id"]
KPI_COLUMNS = [f.name for f in ALARM_KPIS.schema]
MAX_KPI_DAYS = 366


def frames(store: DeltaStore, page: Page, *, start: datetime, end: datetime, template: str | None = None,
           severity: str | None = None, element_web_id: str | None = None) -> dict[str, Any]:
    """Frames overlapping [start, end) matching the filters, by start time, each with `element_path`; the
    window itself is returned too (the timeline's axis)."""
    if end <= start:
        raise BadRequest("end must be after start (e.g. start=*-1d&end=*)")
    where = (ds.field("start_date") <= pa.scalar(end.date())) & (ds.field("start_time") < pa.scalar(end, TIMESTAMP))
    where &= ds.field("end_time").is_null() | (ds.field("end_time") >= pa.scalar(start, TIMESTAMP))
    if template:
        where &= ds.field("template_name") == template
    if severity:
        where &= ds.field("severity") == severity
    if element_web_id:
        where &= ds.field("primary_element_web_id") == element_web_id
    rows = scan(store, EVENT_FRAMES.name, filter=where, columns=FRAME_COLUMNS)
    shown = page.of(rows, [("start_time", "ascending"), ("web_id", "ascending")])
    paths = element_paths(store, sorted({r["primary_element_web_id"] for r in shown["rows"] if r["primary_element_web_id"]}))
    for row in shown["rows"]:
        row["element_path"] = paths.get(row["primary_element_web_id"])
    return {**shown, "start": start, "end": end}


def facets(store: DeltaStore) -> dict[str, list[str]]:
    """The templates and severities present, for the filter menus (two projected columns, deduplicated)."""
    rows = scan(store, EVENT_FRAMES.name, filter=None, columns=["template_name", "severity"])
    return {column: sorted(v for v in pc.unique(rows[column]).to_pylist() if v) for column in rows.column_names}


def element_paths(store: DeltaStore, web_ids: list[str]) -> dict[str, str]:
    day = latest_partition(store, AF_ELEMENTS.name)
    if not web_ids or day is None:
        return {}
    rows = scan(store, AF_ELEMENTS.name, columns=["web_id", "path"],
                filter=(ds.field("snapshot_date") == pa.scalar(day)) & ds.field("web_id").isin(web_ids))
    return dict(zip(rows["web_id"].to_pylist(), rows["path"].to_pylist(), strict=True))


def alarm_kpis(store: DeltaStore, start: date, end: date) -> dict[str, Any]:
    """One row per day in [start, end) from `alarm_kpis`, and the bad actors over those days: each day's top-10
    counts summed (a source outside a day's top 10 adds nothing for that day), the ten highest."""
    if end <= start or end - start > timedelta(days=MAX_KPI_DAYS):
        raise BadRequest(f"the KPI window must be 1 to {MAX_KPI_DAYS} days with end after start")
    rows = scan(store, ALARM_KPIS.name, columns=KPI_COLUMNS,
                filter=(ds.field("event_date") >= pa.scalar(start)) & (ds.field("event_date") < pa.scalar(end)))
    days = rows.sort_by("event_date").to_pylist()
    actors: dict[str, int] = {}
    for day in days:
        for actor in json.loads(day["top_bad_actors"] or "[]"):
            actors[actor["source"]] = actors.get(actor["source"], 0) + int(actor["alarms"])
    ranked = sorted(actors.items(), key=lambda item: (-item[1], item[0]))[:10]
    return {"days": days, "bad_actors": [{"source": s, "alarms": c} for s, c in ranked]}
