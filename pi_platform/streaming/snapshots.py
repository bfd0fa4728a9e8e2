"""PI's current view of each subscribed tag, polled by the collector and published for the stale-tag check.

Every `interval_s` the watch reads PI's clock (`system/status`) and every subscribed tag's snapshot in bulk
(`streamsets/value`, URL-bounded groups); point attributes (excmax, compmax, ..., name and path) are read
once per tag and refreshed every `attributes_refresh_s`. It uses its own client, bounded to
`max_requests_per_s` and `max_concurrency`, so it neither starves nor is starved by gap backfills. The
result goes to `<state_dir>/tags.json` with the collector's newest committed value time per tag, which is
all `staleness.judge` needs: the Dagster check never calls PI and never scans the table.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.streaming import state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotOptions:
    interval_s: float = 30.0  # one bulk snapshot poll this often
    attributes_refresh_s: float = 6 * 3600.0  # point attributes change rarely
    max_requests_per_s: float = 5.0
    max_concurrency: int = 2


class SnapshotWatch:
    """`web_ids()`: what to watch (the collector's subscription); `channel_last()`: newest committed value
    time (µs) per WebID. `poll` is one round (tests and the alerts benchmark call it directly); `run` loops
    and publishes."""

    def __init__(self, pi: PIWebAPIConfig, options: SnapshotOptions, web_ids: Callable[[], Sequence[str]],
                 channel_last: Callable[[], Mapping[str, int]]) -> None:
        self.pi = pi.model_copy(update={"max_requests_per_second": options.max_requests_per_s,
                                        "max_concurrency": options.max_concurrency})
        self.options = options
        self._web_ids = web_ids
        self._channel_last = channel_last
        self._points: dict[str, dict] = {}  # WebID -> {"name", "path", "attributes"}
        self._attributes_at: dict[str, float] = {}
        self._first: dict[str, float] = {}  # first snapshot time seen since this watch started
        self.document: dict[str, Any] = {"started_at": time.time(), "last_error": None, "tags": {}}

    async def run(self, stop: asyncio.Event, state_dir: Path) -> None:
        async with PIWebAPIClient(self.pi) as client:
            while not stop.is_set():
                try:
                    await self.poll(client)
                    self.document["last_error"] = None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - PI down: the check sees polls overdue, with this reason
                    self.document["last_error"] = f"{type(exc).__name__}: {exc}"
                    log.warning("snapshot poll failed (%s); retrying in %.0fs", exc, self.options.interval_s)
                self.document["written_at"] = time.time()
                state.write_json(state_dir / state.TAGS_FILE, self.document)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.options.interval_s)

    async def poll(self, client: PIWebAPIClient) -> dict[str, Any]:
        """One round: refresh due attributes, read PI's clock and every snapshot; update `document`."""
        ids = list(dict.fromkeys(self._web_ids()))
        started = time.time()
        refresh = self.options.attributes_refresh_s
        due = [w for w in ids if started - self._attributes_at.get(w, float("-inf")) > refresh]
        if due:
            found, _ = await client.point_attributes(due)  # failures are retried next round; snapshots say why
            self._points.update(found)
            self._attributes_at.update(dict.fromkeys(found, started))
        server_time = (await client.server_time()).timestamp()
        batch = await client.snapshots(ids)
        tags = self._entries(ids, batch.values, batch.rejects)
        self.document.update(polled_at=started, server_time=server_time, poll_seconds=round(time.time() - started, 3),
                             tags=tags)
        return self.document

    def _entries(self, ids: list[str], values: pa.Table, rejects: pa.Table) -> dict[str, dict]:
        stamps = values["timestamp"].cast(pa.int64()).to_pylist()
        system = values["is_system"].to_pylist()
        states = values["digital_state"].to_pylist()
        snapshot = {w: (ts / 1e6, s if sys else None, name) for w, ts, sys, s, name in
                    zip(values["web_id"].to_pylist(), stamps, system, states, values["name"].to_pylist(), strict=True)}
        errors = dict(zip(rejects["web_id"].to_pylist(), rejects["reason"].to_pylist(), strict=True))
        channel = self._channel_last()
        for web_id, (ts, _, _) in snapshot.items():
            self._first.setdefault(web_id, ts)
        wanted = set(ids)
        self._first = {w: t for w, t in self._first.items() if w in wanted}
        tags = {}
        for web_id in ids:
            point = self._points.get(web_id, {})
            ts, system_state, name = snapshot.get(web_id, (None, None, None))
            last = channel.get(web_id)
            tags[web_id] = {
                "name": point.get("name") or name or web_id,
                "path": point.get("path") or "",
                "attributes": point.get("attributes") or {},
                "snapshot": ts,
                "state": system_state,
                "error": errors.get(web_id),
                "first_snapshot": self._first.get(web_id),
                "channel_last": None if last is None else last / 1e6,
            }
        return tags
