"""Topic names: one topic per stream under a prefix, by tag name or by the AF attribute that references the tag.

MQTT topic levels are separated by `/` and `+`/`#` are subscription wildcards, so each level is sanitized
(`/`, `+`, `#` and NUL become `_`): a tag named `A/B` stays one level. AF paths (`\\\\server\\db\\a\\b|attr`) become
levels `server/db/a/b/attr`. A stream no AF attribute references keeps its tag name.
"""

import re

import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import AF_ATTRIBUTES

_UNSAFE = re.compile(r"[/+#\x00]")


def level(text: str) -> str:
    return _UNSAFE.sub("_", text) or "_"


def af_levels(path: str) -> str:
    return "/".join(level(part) for part in re.split(r"[\\|]", path.lstrip("\\")) if part)


class TopicMap:
    """`prefix/<tag>` or `prefix/<af levels>` per row, computed once per stream."""

    def __init__(self, prefix: str, af_paths: dict[str, str] | None = None) -> None:
        self.prefix = prefix.strip("/")
        self.af_paths = af_paths or {}
        self._cache: dict[str, str] = {}

    def topic(self, web_id: str, name: str) -> str:
        topic = self._cache.get(web_id)
        if topic is None:
            path = self.af_paths.get(web_id)
            tail = af_levels(path) if path else level(name)
            topic = self._cache[web_id] = f"{self.prefix}/{tail}" if self.prefix else tail
        return topic

    def topics(self, rows: pa.Table) -> list[str]:
        return [self.topic(w, n) for w, n in zip(rows["web_id"].to_pylist(), rows["name"].to_pylist(), strict=True)]


def af_paths(store: DeltaStore) -> dict[str, str]:
    """Point WebID -> AF attribute path, from the newest `af_attributes` snapshot (first path if several)."""
    if not store.exists(AF_ATTRIBUTES.name):
        return {}
    rows = store.read(AF_ATTRIBUTES.name, columns=["snapshot_date", "point_web_id", "path"])
    if rows.num_rows == 0:
        return {}
    rows = rows.filter(pc.and_(pc.equal(rows["snapshot_date"], pc.max(rows["snapshot_date"])),
                               pc.is_valid(rows["point_web_id"])))
    rows = rows.sort_by([("point_web_id", "ascending"), ("path", "descending")])
    return dict(zip(rows["point_web_id"].to_pylist(), rows["path"].to_pylist(), strict=True))  # first path wins
