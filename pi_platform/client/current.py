"""What PI holds for points right now: snapshot values in bulk and the classic point attributes.

Stale-tag detection judges each tag on PI's own terms (its snapshot, its excmax/compmax), so it needs both
for every subscribed tag at a bounded cost:

- snapshots: `streamsets/value` with repeated webId, in URL-length-bounded groups (as recorded reads are),
  turned into VALUE_SCHEMA columns by the shared column builder. Some servers refuse a whole stream set when
  one point is gone (400/404); such a group is re-read point by point so one deleted tag cannot hide the
  state of the others, and it comes back as a reject with PI's reason.
- attributes: one `GET points/{webId}/attributes` per point, carried many at a time in `POST batch`.
"""

import asyncio
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

import orjson
import pyarrow as pa

from pi_platform.client.columns import StreamPage, ValueBatch, build_batch
from pi_platform.client.errors import BadRequest, NotFound
from pi_platform.client.recorded import url_groups
from pi_platform.client.transport import Transport, error_text
from pi_platform.pitime import parse_time
from pi_platform.value_columns import REJECT_SCHEMA

# The attributes that say how often PI must refresh a tag's snapshot and archive, and who feeds it.
STALENESS_ATTRIBUTES = ("excmax", "compmax", "excdev", "compdev", "scan", "ptclassname", "pointsource", "compressing")
_BATCH_SIZE = 200  # sub-requests per POST batch: one request per 200 points, bodies stay small


async def server_time(transport: Transport) -> datetime:
    """PI Web API's own clock (`system/status` ServerTime): snapshots are judged against it, not ours."""
    status = await transport.get("system/status")
    return parse_time(str(status["ServerTime"]))


async def snapshots(transport: Transport, web_ids: Sequence[str]) -> ValueBatch:
    """Each stream's current value (one row per stream in VALUE_SCHEMA, `web_id` as requested: servers answer
    in request order but may echo another WebID form); unreadable streams are rejects."""
    ids = list(dict.fromkeys(web_ids))
    base = len(transport.config.url) + len("/streamsets/value?")
    groups = url_groups(ids, base, transport.config.max_url_length)
    return ValueBatch.concat(list(await asyncio.gather(*(_snapshot_group(transport, g) for g in groups))))


async def _snapshot_group(transport: Transport, group: list[str]) -> ValueBatch:
    try:
        data = await transport.get("streamsets/value", params=[("webId", w) for w in group])
    except (BadRequest, NotFound) as exc:
        if len(group) == 1:
            return _rejected([(group[0], None, str(exc), {"Errors": [str(exc)]})])
        return ValueBatch.concat(list(await asyncio.gather(*(_snapshot_group(transport, [w]) for w in group))))
    pages: list[StreamPage] = []
    failed: list[tuple[str, str | None, str, dict]] = []
    for requested, item in zip(group, data.get("Items") or [], strict=False):
        value = item.get("Value")
        if not isinstance(value, dict) or item.get("Errors"):
            failed.append((requested, item.get("Name"), error_text(item), item))
            continue
        pages.append(StreamPage(requested, item.get("Name") or requested, value.get("UnitsAbbreviation"), [value]))
    batch, _ = build_batch(pages)
    return ValueBatch.concat([batch, _rejected(failed)]) if failed else batch


def _rejected(failed: list[tuple[str, str | None, str, dict]]) -> ValueBatch:
    rejects = pa.Table.from_pydict({
        "web_id": [f[0] for f in failed],
        "name": [f[1] for f in failed],
        "reason": [f"PI could not read this stream's snapshot: {f[2]}" for f in failed],
        "raw": [orjson.dumps(f[3]).decode() for f in failed],
        "timestamp": [None] * len(failed),
    }, schema=REJECT_SCHEMA)
    return ValueBatch(ValueBatch.empty().values, rejects)


async def point_attributes(transport: Transport, web_ids: Sequence[str],
                           names: Sequence[str] = STALENESS_ATTRIBUTES) -> tuple[dict[str, dict], dict[str, str]]:
    """({point WebID: {"name", "path", "attributes": {attribute: value}}}, {point WebID: error}).

    Two sub-requests per point in one POST batch: `points/{webId}` (name, path) and its `attributes`
    (only `names` are kept; a point lacking one simply has no entry for it)."""
    ids = list(dict.fromkeys(web_ids))
    found: dict[str, dict] = {}
    errors: dict[str, str] = {}
    wanted = {n.lower() for n in names}
    url = transport.config.url
    for start in range(0, len(ids), _BATCH_SIZE):  # sequential: attributes are read rarely
        chunk = ids[start:start + _BATCH_SIZE]
        requests: dict[str, dict] = {}
        for i, web_id in enumerate(chunk):
            point = f"{url}/points/{quote(web_id, safe='')}"
            requests[f"p{i}"] = {"Method": "GET", "Resource": point}
            requests[f"a{i}"] = {"Method": "GET", "Resource": f"{point}/attributes"}
        answers = await transport.post("batch", requests)
        for i, web_id in enumerate(chunk):
            point, attributes = answers.get(f"p{i}") or {}, answers.get(f"a{i}") or {}
            bad = next((a for a in (point, attributes)
                        if a.get("Status") != 200 or not isinstance(a.get("Content"), dict)), None)
            if bad is not None:
                errors[web_id] = f"HTTP {bad.get('Status')}: {error_text(bad.get('Content'))}"
                continue
            items = attributes["Content"].get("Items") or []
            found[web_id] = {
                "name": point["Content"].get("Name"),
                "path": point["Content"].get("Path"),
                "attributes": {str(a.get("Name")).lower(): a.get("Value") for a in items
                               if str(a.get("Name")).lower() in wanted},
            }
    return found, errors
