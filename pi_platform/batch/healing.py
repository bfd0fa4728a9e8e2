"""Late edits: which tag-days PI changed since they were read, from its Stream Updates (no Dagster here).

Operators edit history long after a day was materialised. PI reports each edit through Stream Updates (client
`updates.py`); a poll turns the reported changes into tag-days in the plant's zone, so a re-read can replace
exactly those tags of exactly those days. What a watcher remembers between polls (`Watch`: a marker per tag,
the tag names a run needs) is a small JSON document: the healing sensor keeps it as its cursor, which Dagster
stores durably in its instance.

Live values arrive as `Add` events too (a marker also reports new data); they belong to today, which the
refresh schedule re-reads anyway, so only days before the plant's today count, and only within the lookback
(older days are left alone: a deliberate bound on how far back edits are followed).
"""

from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform import plantday
from pi_platform.client import PIWebAPIClient
from pi_platform.client.updates import CHANGES_SCHEMA


@dataclass
class Watch:
    """The tags being watched: web_id -> marker to poll next, web_id -> tag name."""

    markers: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    resolved_at: float = 0.0  # when the tag selection was last resolved (new tags are registered then)

    def dump(self) -> str:
        return orjson.dumps({"markers": self.markers, "names": self.names, "resolved_at": self.resolved_at}).decode()

    @classmethod
    def load(cls, text: str | None) -> "Watch":
        if not text:
            return cls()
        data = orjson.loads(text)
        return cls(dict(data.get("markers", {})), dict(data.get("names", {})), float(data.get("resolved_at", 0.0)))


@dataclass(frozen=True)
class Polled:
    changes: pa.Table  # client.updates.CHANGES_SCHEMA
    registered: int  # streams (re-)registered this poll
    lost: list[str]  # streams whose marker the server had dropped (their changes in between are unknown)
    refused: dict[str, str]  # streams PI would not register, with its reason


async def poll(client: PIWebAPIClient, watch: Watch, selected: pa.Table | None = None) -> Polled:
    """Poll every watched tag's changes and advance the markers in `watch`; register tags that have no marker
    (new in `selected`, or lost by the server). A tag no longer selected stops being watched."""
    if selected is not None:
        names = dict(zip(selected["web_id"].to_pylist(), selected["name"].to_pylist(), strict=True))
        watch.markers = {w: m for w, m in watch.markers.items() if w in names}
        watch.names = names
    polled = await client.poll_updates(watch.markers) if watch.markers else None
    lost = polled.lost if polled else []
    if polled:
        watch.markers.update(polled.markers)
    for web_id in lost:
        watch.markers.pop(web_id, None)
    missing = [w for w in watch.names if w not in watch.markers]
    refused: dict[str, str] = {}
    if missing:
        registered = await client.register_updates(missing)
        watch.markers.update(registered.markers)
        refused = registered.errors
    changes = polled.changes if polled else CHANGES_SCHEMA.empty_table()
    return Polled(changes, len(missing) - len(refused), lost, refused)


def tag_days(changes: pa.Table, zone: ZoneInfo, first: date, before: date) -> dict[date, list[str]]:
    """The changed tags (WebIDs, sorted) of each plant's day in [first, before), grouped in one Arrow pass."""
    if changes.num_rows == 0:
        return {}
    days = plantday.local_days(changes["timestamp"], zone)
    table = pa.table({"day": days, "web_id": changes["web_id"]})
    inside = pc.and_(pc.greater_equal(table["day"], pa.scalar(first)), pc.less(table["day"], pa.scalar(before)))
    grouped = table.filter(inside).group_by("day").aggregate([("web_id", "distinct")])
    return {row["day"]: sorted(row["web_id_distinct"]) for row in grouped.to_pylist()}
