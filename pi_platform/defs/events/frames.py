"""PI event frame items -> `event_frames` and `alarms` rows (small tables: clarity over speed)."""

import asyncio
from collections.abc import Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.client import PIWebAPIClient
from pi_platform.client.frames import event_frames_table
from pi_platform.defs import catalog
from pi_platform.defs.catalog import conform
from pi_platform.defs.partitions import Window
from pi_platform.storage.schemas import SEVERITIES
from pi_platform.storage.tables import ALARMS, EVENT_FRAMES

ALARM_CATEGORY = "Alarm"


async def read_frames(client: PIWebAPIClient, window: Window, database: str | None) -> list[dict]:
    """Frames overlapping the window in every asset database (PI searchMode Overlapped)."""
    items: list[dict] = []
    for db in await catalog.databases(client, database):
        items.extend(await client.event_frames(db["WebId"], window.start_time, window.end_time, search_mode="Overlapped"))
    return items


def frames_table(items: Sequence[dict]) -> pa.Table:
    table = event_frames_table(items)
    primary = [refs[0] if refs else None for refs in table["ref_element_web_ids"].to_pylist()]
    return conform(
        table,
        EVENT_FRAMES,
        primary_element_web_id=pa.array(primary, pa.string()),
        start_date=pc.cast(table["start_time"], pa.date32()),
    )


def overlapping(frames: pa.Table, window: Window) -> pa.Table:
    """Frames that intersect [window.start, window.end) (open frames extend to infinity)."""
    starts_before_end = pc.less(frames["start_time"], pa.scalar(window.end_time, frames["start_time"].type))
    ends_after_start = pc.or_(
        pc.is_null(frames["end_time"]),
        pc.greater_equal(frames["end_time"], pa.scalar(window.start_time, frames["end_time"].type)),
    )
    return frames.filter(pc.and_(starts_before_end, ends_after_start))


def alarm_frames(frames: pa.Table) -> pa.Table:
    """Alarms are acknowledgeable event frames (AF analyses with CanBeAcknowledged) or ones categorised Alarm."""
    ackable = pc.fill_null(frames["can_be_acknowledged"], False)
    categorised = pa.array([ALARM_CATEGORY in (c or ()) for c in frames["category_names"].to_pylist()], pa.bool_())
    return frames.filter(pc.or_(ackable, categorised))


async def read_annotations(client: PIWebAPIClient, web_ids: Sequence[str]) -> list[list[dict]]:
    return list(await asyncio.gather(*(client.annotations(web_id) for web_id in web_ids)))


def alarms_table(frames: pa.Table, annotations: dict[str, list[dict]], element_paths: pa.Table) -> pa.Table:
    """`alarms` rows from alarm frames, their annotations (by frame WebID) and element paths (web_id, path)
    so the KPIs name bad actors the way operators know them."""
    level = {name: i for i, name in enumerate(SEVERITIES)}
    web_ids = frames["web_id"].to_pylist()
    notes = [annotations.get(w, []) for w in web_ids]
    acked = pc.fill_null(frames["is_acknowledged"], False)
    ack_delay = pc.divide(
        pc.cast(pc.subtract(frames["acknowledged_date"], frames["start_time"]), pa.int64()), 1_000_000.0
    )
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
        time_to_ack_s=pc.if_else(acked, ack_delay, pa.scalar(None, pa.float64())),
        annotation_count=pa.array([len(n) for n in notes], pa.int32()),
        annotations=pa.array([orjson.dumps([_note(n) for n in ns]).decode() if ns else None for ns in notes], pa.string()),
    )


def _note(item: dict) -> dict:
    return {
        "name": item.get("Name"),
        "value": item.get("Value"),
        "creator": item.get("Creator"),
        "creation_date": item.get("CreationDate"),
    }
