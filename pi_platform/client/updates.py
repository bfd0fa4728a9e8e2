"""Stream Updates for many tags: register each stream once, then poll what changed since each marker.

PI signals history edits (an operator replaced, inserted or deleted an archived value) through Stream Updates:
`POST streamsets/updates?webId=..` answers a `LatestMarker` per stream, `GET streamsets/updates?marker=..`
answers the data pipe events since each marker (Action Add / Update / Delete, with the value's timestamp) and
the next marker. Both go in URL-length-bounded groups like every multi-stream read. A marker the server no
longer holds (it restarted, its cache dropped it) comes back in `lost`: register that stream again; the
changes in between are unknown, so the caller decides how to catch up (the healing sensor re-reads).

Only what a caller needs to know *which* values changed travels on: `CHANGES_SCHEMA` rows (web_id, timestamp,
action), the timestamps parsed in one Arrow cast.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from pi_platform.client.columns import parse_timestamps
from pi_platform.client.recorded import url_groups
from pi_platform.client.transport import Transport, error_text
from pi_platform.value_columns import TIMESTAMP

CHANGES_SCHEMA = pa.schema([("web_id", pa.string()), ("timestamp", TIMESTAMP), ("action", pa.string())])


@dataclass(frozen=True)
class Registered:
    markers: dict[str, str]  # web_id -> marker to poll next
    errors: dict[str, str]  # web_id -> why PI would not register it


@dataclass(frozen=True)
class Updates:
    changes: pa.Table  # CHANGES_SCHEMA, in the order PI reported them
    markers: dict[str, str]  # web_id -> marker to poll next (every stream that answered)
    lost: list[str]  # streams whose marker the server no longer knows: register them again


async def register(transport: Transport, web_ids: Sequence[str]) -> Registered:
    """Register streams for updates (`POST streamsets/updates`), in URL-bounded groups."""
    ids = list(dict.fromkeys(web_ids))
    base = len(transport.config.url) + len("/streamsets/updates?")
    groups = url_groups(ids, base, transport.config.max_url_length)
    answers = await asyncio.gather(*(transport.post("streamsets/updates", None, params=[("webId", w) for w in g])
                                     for g in groups))
    markers: dict[str, str] = {}
    errors: dict[str, str] = {}
    for group, answer in zip(groups, answers, strict=True):
        for web_id, item in zip(group, (answer or {}).get("Items") or [], strict=False):
            if item.get("LatestMarker") and item.get("Status", "Succeeded") == "Succeeded":
                markers[web_id] = item["LatestMarker"]
            else:
                errors[web_id] = error_text(item.get("Exception")) or f"status {item.get('Status')}"
    return Registered(markers, errors)


async def poll(transport: Transport, markers: Mapping[str, str]) -> Updates:
    """The changes since each stream's marker (`GET streamsets/updates`) and the markers to use next."""
    by_marker = {marker: web_id for web_id, marker in markers.items()}
    base = len(transport.config.url) + len("/streamsets/updates?")
    groups = url_groups(list(by_marker), base, transport.config.max_url_length, param="marker")
    answers = await asyncio.gather(*(transport.get("streamsets/updates", params=[("marker", m) for m in g])
                                     for g in groups))
    web_ids: list[str] = []
    stamps: list[str] = []
    actions: list[str] = []
    latest: dict[str, str] = {}
    lost: list[str] = []
    for group, answer in zip(groups, answers, strict=True):
        for requested, item in zip(group, (answer or {}).get("Items") or [], strict=False):
            web_id = by_marker[requested]
            if not item.get("LatestMarker"):
                lost.append(web_id)
                continue
            latest[web_id] = item["LatestMarker"]
            for event in item.get("Events") or []:
                web_ids.append(web_id)
                stamps.append(event.get("Timestamp"))
                actions.append(event.get("Action"))
    timestamps, _ = parse_timestamps(stamps)
    changes = pa.table({"web_id": pa.array(web_ids, pa.string()), "timestamp": timestamps,
                        "action": pa.array(actions, pa.string())}, schema=CHANGES_SCHEMA)
    return Updates(changes, latest, lost)
