"""`PIWebAPIClient`: the few read operations the platform needs, over the policies of `Transport`.

List methods return PI's JSON items as dicts (every page, via startIndex); `client/objects.py` turns them
into tables. Recorded values come back as Arrow (`recorded`, `recorded_table`). Times are PI time
expressions or datetimes, resolved here in UTC (not in the server's local zone, which is how peers end up
an hour off twice a year).
"""

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from pi_platform.client import current, summaries, updates
from pi_platform.client.columns import ValueBatch
from pi_platform.client.config import PIWebAPIConfig
from pi_platform.client.errors import NotFound, TimeRangeError
from pi_platform.client.paging import paged_items
from pi_platform.client.recorded import RecordedReader
from pi_platform.client.transport import Transport
from pi_platform.pitime import PITimeError, format_time, parse_time
from pi_platform.webid import point_path_webid

TimeLike = str | datetime
log = logging.getLogger("pi_platform.client")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_time(value)
    return value


class PIWebAPIClient:
    """Async PI Web API client. `async with PIWebAPIClient(config) as pi: ...`"""

    def __init__(self, config: PIWebAPIConfig) -> None:
        self.config = config
        self.transport = Transport(config)

    async def __aenter__(self) -> "PIWebAPIClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.aclose()

    def __repr__(self) -> str:
        return f"PIWebAPIClient(url={self.config.url!r}, auth={self.config.auth!r})"

    # -- plumbing -----------------------------------------------------------------------------------------

    async def get(self, path: str, **params: Any) -> Any:
        """GET any PI Web API path; keyword params in snake_case or camelCase, lists repeat the parameter."""
        return await self.transport.get(path, params=self._params(params))

    async def list_items(self, path: str, **params: Any) -> list[dict]:
        """Every item of a paged list endpoint."""
        async def fetch(page: dict[str, Any]) -> Any:
            return await self.transport.get(path, params=self._params(page))

        page_size = min(self.config.list_page_size, self.config.server_max_items)
        return [item async for item in paged_items(fetch, params, page_size)]

    async def batch(self, requests: dict[str, dict]) -> dict[str, dict]:
        """POST batch: `{id: {Method, Resource, Parameters?, ParentIds?}}` -> `{id: {Status, Headers, Content}}`."""
        return await self.transport.post("batch", requests)

    @staticmethod
    def _params(params: dict[str, Any]) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for key, value in params.items():
            if value is None:
                continue
            name = _camel(key) if "_" in key else key
            if isinstance(value, (list, tuple)):
                out.extend((name, _param(v)) for v in value)
            else:
                out.append((name, _param(value)))
        return out

    # -- inventory ----------------------------------------------------------------------------------------

    async def system(self) -> dict:
        return await self.get("system")

    async def asset_servers(self) -> list[dict]:
        return await self.list_items("assetservers")

    async def asset_databases(self, server_web_id: str) -> list[dict]:
        return await self.list_items(f"assetservers/{server_web_id}/assetdatabases")

    async def elements(self, database_web_id: str, *, search_full_hierarchy: bool = True,
                       template_name: str | None = None, name_filter: str | None = None, **filters: Any) -> list[dict]:
        return await self.list_items(f"assetdatabases/{database_web_id}/elements", search_full_hierarchy=search_full_hierarchy,
                               template_name=template_name, name_filter=name_filter, **filters)

    async def attributes(self, element_web_id: str, **filters: Any) -> list[dict]:
        return await self.list_items(f"elements/{element_web_id}/attributes", **filters)

    async def data_servers(self) -> list[dict]:
        return await self.list_items("dataservers")

    async def data_server(self) -> dict:
        """The configured data server (by name), or the only/first one if none is configured."""
        servers = await self.data_servers()
        wanted = self.config.data_server
        for server in servers:
            if wanted is None or server.get("Name", "").lower() == wanted.lower():
                return server
        names = ", ".join(s.get("Name", "?") for s in servers) or "none"
        raise NotFound(f"data server {wanted!r} not found on {self.config.url} (available: {names}); fix data_server")

    async def points(self, data_server_web_id: str, name_filter: str = "*", **filters: Any) -> list[dict]:
        return await self.list_items(f"dataservers/{data_server_web_id}/points", name_filter=name_filter, **filters)

    async def point(self, web_id: str) -> dict:
        return await self.get(f"points/{web_id}")

    async def point_attributes(self, web_ids: Sequence[str]) -> tuple[dict[str, dict], dict[str, str]]:
        """Name, path and exception/compression attributes per point (POST batch); see `current`."""
        return await current.point_attributes(self.transport, web_ids)

    async def enumeration_sets(self, data_server_web_id: str) -> list[dict]:
        return await self.list_items(f"dataservers/{data_server_web_id}/enumerationsets")

    async def event_frames(self, database_web_id: str, start: TimeLike, end: TimeLike, **filters: Any) -> list[dict]:
        """Event frames by database; filters such as search_mode, template_name, severity=[...], is_acknowledged."""
        start_dt, end_dt = self.resolve_range(start, end)
        filters.setdefault("search_mode", "Overlapped")
        return await self.list_items(f"assetdatabases/{database_web_id}/eventframes", start_time=start_dt, end_time=end_dt,
                               **filters)

    async def annotations(self, event_frame_web_id: str) -> list[dict]:
        data = await self.get(f"eventframes/{event_frame_web_id}/annotations")
        return list(data.get("Items") or []) if isinstance(data, dict) else []

    def tag_web_ids(self, tags: Sequence[str], data_server_name: str) -> list[str]:
        """PathOnly WebIDs for tag names, built locally: no round trip per tag."""
        return [point_path_webid(data_server_name, tag) for tag in tags]

    # -- values -------------------------------------------------------------------------------------------

    def resolve_range(self, start: TimeLike, end: TimeLike) -> tuple[datetime, datetime]:
        """PI time expressions -> UTC datetimes; `t`/`y`/naive times in config.time_zone (default UTC)."""
        now = datetime.now(timezone.utc)  # one `now` for both ends, so `*-1d`..`*` is exactly a day
        zone = self.config.time_zone
        try:
            start_dt, end_dt = parse_time(start, now=now, tz=zone), parse_time(end, now=now, tz=zone)
        except PITimeError as exc:
            raise TimeRangeError(str(exc)) from None
        return start_dt, end_dt

    async def server_time(self) -> datetime:
        """The server's clock (`system/status` ServerTime)."""
        return await current.server_time(self.transport)

    async def snapshots(self, web_ids: Sequence[str]) -> ValueBatch:
        """Current values (one row per stream, VALUE_SCHEMA) via `streamsets/value`; unreadable ones as rejects."""
        return await current.snapshots(self.transport, web_ids)

    async def recorded(self, web_ids: str | Sequence[str], start: TimeLike, end: TimeLike) -> AsyncIterator[ValueBatch]:
        """Recorded values (boundary Inside) chunk by chunk; nothing lost or doubled at page or window edges.

        An end before the start yields nothing (with a warning) rather than failing: it is what a "since the
        last value until now" read gets when the last value is stamped ahead of this machine's clock.
        """
        start_dt, end_dt = self.resolve_range(start, end)
        if end_dt < start_dt:
            log.warning("recorded: end %s is before start %s; nothing to read", format_time(end_dt),
                        format_time(start_dt))
            return
        ids = [web_ids] if isinstance(web_ids, str) else list(web_ids)
        async for batch in RecordedReader(self.transport, self.config).read(ids, start_dt, end_dt):
            yield batch

    async def summaries(self, web_ids: Sequence[str], start: TimeLike, end: TimeLike, *, duration: timedelta,
                        types: Sequence[str], basis: str = "TimeWeighted") -> summaries.SummaryBatch:
        """PI's summaries (`streamsets/summary`) per `duration` interval, long form; see `client/summaries.py`."""
        start_dt, end_dt = self.resolve_range(start, end)
        return await summaries.summaries(self.transport, web_ids, start_dt, end_dt, duration=duration, types=types,
                                         basis=basis)

    async def interpolated(self, web_ids: Sequence[str], start: TimeLike, end: TimeLike, *,
                           interval: timedelta) -> ValueBatch:
        """PI's interpolated values (`streamsets/interpolated`) every `interval` in [start, end), VALUE_SCHEMA."""
        start_dt, end_dt = self.resolve_range(start, end)
        return await summaries.interpolated(self.transport, web_ids, start_dt, end_dt, interval=interval)

    async def register_updates(self, web_ids: Sequence[str]) -> updates.Registered:
        """Register streams for Stream Updates (`streamsets/updates`): a marker per stream; see `client/updates.py`."""
        return await updates.register(self.transport, web_ids)

    async def poll_updates(self, markers: Mapping[str, str]) -> updates.Updates:
        """What changed (edits included) since each marker, and the markers to use next."""
        return await updates.poll(self.transport, markers)

    async def recorded_batch(self, web_ids: str | Sequence[str], start: TimeLike, end: TimeLike) -> ValueBatch:
        """All chunks of `recorded` in one ValueBatch (values and rejects)."""
        return ValueBatch.concat([batch async for batch in self.recorded(web_ids, start, end)])

    async def recorded_table(self, web_ids: str | Sequence[str], start: TimeLike, end: TimeLike) -> pa.Table:
        """All values as one table. Rejects are not in it: they are logged as a warning, and
        `recorded_batch` returns them for callers that quarantine them."""
        batch = await self.recorded_batch(web_ids, start, end)
        if batch.rejects.num_rows:
            log.warning("%d recorded items could not become values (per-value Errors or unreadable); "
                        "use recorded_batch() to get them with reasons", batch.rejects.num_rows)
        return batch.values
