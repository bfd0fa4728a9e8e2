"""PI event frame items -> `event_frames` and `alarms` rows (small tables: clarity over speed).

PI writes placeholders where a time does not exist: 9999-12-31 for the end of a frame still in progress and
1970-01-01 for the acknowledgement of a frame never acknowledged. They become nulls here, in every time
column, so nobody computes an end or a time to acknowledge from them. Frames PI may still change (open, or
awaiting acknowledgement) are re-read by WebID on later runs until they settle, whatever day they started.
"""

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform import plantday
from pi_platform.client import PIWebAPIClient
from pi_platform.client.errors import NotFound
from pi_platform.client.objects import event_frames_table
from pi_platform.batch import inventory
from pi_platform.batch.inventory import conform
from pi_platform.batch.window import DayWindow
from pi_platform.storage.schemas import SEVERITIES
from pi_platform.storage.tables import ALARMS, EVENT_FRAMES

ALARM_CATEGORY = "Alarm"
TIME_COLUMNS = ("start_time", "end_time", "acknowledged_date")
NEVER = datetime(1970, 1, 1, tzinfo=timezone.utc)  # PI's "no time" (never acknowledged)
OPEN_FROM = datetime(9999, 1, 1, tzinfo=timezone.utc)  # PI's AFTime.MaxValue: still open
# An operator may still acknowledge an alarm this long after it started; older ones are settled. (Open
# frames are never settled, whatever their age: standing alarms are the ones that matter most.)
ACK_HORIZON = timedelta(days=1)


async def read_frames(
    client: PIWebAPIClient, window: DayWindow, database: str | None, refresh: Sequence[str] = ()
) -> list[dict]:
    """Frames overlapping the window in every asset database (PI searchMode Overlapped), plus the frames
    `refresh` names (stored frames not yet settled) that the search no longer returns."""
    items: list[dict] = []
    for db in await inventory.databases(client, database):
        items.extend(await client.event_frames(db["WebId"], window.start_time, window.end_time, search_mode="Overlapped"))
    seen = {item.get("WebId") for item in items}
    items.extend(await _frames_by_web_id(client, [w for w in refresh if w not in seen]))
    return items


async def _frames_by_web_id(client: PIWebAPIClient, web_ids: Sequence[str]) -> list[dict]:
    """Frames read one by one; one deleted from PI meanwhile is skipped (its stored row stays as last seen)."""

    async def one(web_id: str) -> dict | None:
        try:
            return await client.get(f"eventframes/{web_id}")
        except NotFound:
            return None

    return [item for item in await asyncio.gather(*(one(w) for w in web_ids)) if item is not None]


def without_placeholders(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """Null where PI wrote a placeholder instead of a time (1970-01-01T00:00:00Z, any time in year 9999)."""
    placeholder = pc.or_(
        pc.equal(times, pa.scalar(NEVER, times.type)), pc.greater_equal(times, pa.scalar(OPEN_FROM, times.type))
    )
    return pc.if_else(pc.fill_null(placeholder, False), pa.scalar(None, times.type), times)


def frames_table(items: Sequence[dict]) -> pa.Table:
    """`event_frames` rows; a frame without a real end time is open, however PI marked it."""
    table = event_frames_table(items)
    for name in TIME_COLUMNS:
        table = table.set_column(table.schema.get_field_index(name), name, without_placeholders(table[name]))
    primary = [refs[0] if refs else None for refs in table["ref_element_web_ids"].to_pylist()]
    return conform(
        table,
        EVENT_FRAMES,
        is_open=pc.or_kleene(table["is_open"], pc.is_null(table["end_time"])),
        primary_element_web_id=pa.array(primary, pa.string()),
        start_date=plantday.local_days(table["start_time"], plantday.zone()),
    )


def in_window(frames: pa.Table, window: DayWindow, also: Sequence[str] = ()) -> pa.Table:
    """Frames that intersect [window.start, window.end) (open frames extend to infinity), plus those named in
    `also`. Kleene logic throughout: an open frame's null end must keep the row, not drop it."""
    starts_before_end = pc.less(frames["start_time"], pa.scalar(window.end_time, frames["start_time"].type))
    ends_after_start = pc.or_kleene(
        pc.is_null(frames["end_time"]),
        pc.greater_equal(frames["end_time"], pa.scalar(window.start_time, frames["end_time"].type)),
    )
    named = pc.is_in(frames["web_id"], value_set=pa.array(list(also), pa.string()))
    return frames.filter(pc.fill_null(pc.or_kleene(pc.and_kleene(starts_before_end, ends_after_start), named), False))


def unsettled(stored: pa.Table, window: DayWindow, *, open_column: str) -> list[str]:
    """WebIDs of stored frames started before the window that PI may still change: open ones, and
    acknowledgeable, unacknowledged ones younger than ACK_HORIZON. A run re-reads them so their end and
    acknowledgement are recorded although they no longer overlap any day being run."""
    start = stored["start_time"]
    earlier = pc.less(start, pa.scalar(window.start_time, start.type))
    recent = pc.greater_equal(start, pa.scalar(window.start_time - ACK_HORIZON, start.type))
    awaiting = pc.and_(recent, pc.invert(pc.fill_null(stored["is_acknowledged"], False)))
    if "can_be_acknowledged" in stored.column_names:
        awaiting = pc.and_(awaiting, pc.fill_null(stored["can_be_acknowledged"], False))
    settling = pc.or_(pc.fill_null(stored[open_column], False), awaiting)
    return stored.filter(pc.and_(earlier, settling))["web_id"].to_pylist()


def alarm_frames(frames: pa.Table) -> pa.Table:
    """Alarms are acknowledgeable event frames (AF analyses with CanBeAcknowledged) or ones categorised Alarm."""
    ackable = pc.fill_null(frames["can_be_acknowledged"], False)
    categorised = pa.array([ALARM_CATEGORY in (c or ()) for c in frames["category_names"].to_pylist()], pa.bool_())
    return frames.filter(pc.or_(ackable, categorised))


async def read_annotations(client: PIWebAPIClient, web_ids: Sequence[str]) -> list[list[dict]]:
    return list(await asyncio.gather(*(client.annotations(web_id) for web_id in web_ids)))


def alarms_table(frames: pa.Table, annotations: dict[str, list[dict]], element_paths: pa.Table) -> pa.Table:
    """`alarms` rows from alarm frames, their annotations (by frame WebID) and element paths (web_id, path)
    so the KPIs name bad actors the way operators know them.

    A field that fails a check is left null and its reason recorded in `field_issues`; the alarm itself is
    kept, so it still counts for rate, floods, chattering and bad actors."""
    level = {name: i for i, name in enumerate(SEVERITIES)}
    web_ids = frames["web_id"].to_pylist()
    notes = [annotations.get(w, []) for w in web_ids]
    time_to_ack, issues = _time_to_ack(frames)
    template = pc.fill_null(frames["template_name"], "")
    paths = pc.take(element_paths["path"], pc.index_in(frames["primary_element_web_id"], value_set=element_paths["web_id"]))
    element = pc.fill_null(pc.coalesce(paths, frames["primary_element_web_id"]), "")
    return conform(
        frames,
        ALARMS,
        element_path=paths,
        source=pc.binary_join_element_wise(template, element, " @ "),
        severity_level=pa.array([level.get(s) for s in frames["severity"].to_pylist()], pa.int32()),
        element_web_id=frames["primary_element_web_id"],
        is_active=frames["is_open"],
        time_to_ack_s=time_to_ack,
        field_issues=issues,
        annotation_count=pa.array([len(n) for n in notes], pa.int32()),
        annotations=pa.array([orjson.dumps([_note(n) for n in ns]).decode() if ns else None for ns in notes], pa.string()),
    )


def _time_to_ack(frames: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(time_to_ack_s, field_issues): seconds from start to acknowledgement of acknowledged alarms; null with
    a reason when the acknowledgement has no date or predates the start (a drifting clock in PI)."""
    acked = pc.fill_null(frames["is_acknowledged"], False).to_pylist()
    delay = pc.divide(
        pc.cast(pc.subtract(frames["acknowledged_date"], frames["start_time"]), pa.int64()), 1_000_000.0
    ).to_pylist()
    seconds: list[float | None] = []
    issues: list[str | None] = []
    for is_acked, d in zip(acked, delay):
        issue = None
        if is_acked and d is None:
            issue = "time_to_ack_s: acknowledged without an acknowledged_date"
        elif is_acked and d < 0:
            issue = f"time_to_ack_s: acknowledged_date {-d:g} s before start_time"
        seconds.append(d if is_acked and issue is None else None)
        issues.append(issue)
    return pa.array(seconds, pa.float64()), pa.array(issues, pa.string())


def _note(item: dict) -> dict:
    created = item.get("CreationDate")
    return {
        "name": item.get("Name"),
        "value": item.get("Value"),
        "creator": item.get("Creator"),
        "creation_date": None if _is_placeholder(created) else created,
    }


def _is_placeholder(text: str | None) -> bool:
    """PI's placeholder times as text (annotations keep their dates as PI wrote them)."""
    return bool(text) and (text.startswith(NEVER.strftime("%Y-%m-%dT%H:%M:%S")) or text.startswith("9999"))
