"""Stream Updates endpoints, shaped as the 2018 SP1 swagger's StreamUpdatesRegister / StreamUpdatesRetrieve.

- `POST streams/{webId}/updates` -> StreamUpdatesRegister {Source, SourceName, SourcePath, Status, LatestMarker}
- `POST streamsets/updates?webId=..` -> Items[StreamUpdatesRegister], one per webId in request order
- `GET streams/updates/{marker}` -> StreamUpdatesRetrieve {Source, SourceName, SourcePath, Status, Events,
  RequestedMarker, LatestMarker}; an unknown marker is PI's 404 ("stream-updates cache not found")
- `GET streamsets/updates?marker=..` -> Items[StreamUpdatesRetrieve]

Events are DataPipeEvents: a TimedValue plus `Action` and `PreviousEventAction`. A stream (or marker) that
fails inside a stream set is an item with `Status: "Failed"` and an `Exception` (`Errors`) and the answer is
207, like PI's other partial results; the rest of the set is answered normally.
"""

import orjson

from pi_platform.simulator import jsonfmt
from pi_platform.simulator.api import ApiError, Ctx, Reply, Router
from pi_platform.simulator.plant import Stream
from pi_platform.simulator.updates import UnknownMarker

SUCCEEDED, FAILED = "Succeeded", "Failed"
ARCHIVED = "PreviousEventArchived"  # history events: the previous event is in the archive already


def _source(ctx: Ctx, stream: Stream) -> dict:
    return {"Source": ctx.emit(stream.canonical_web_id), "SourceName": stream.name, "SourcePath": stream.path}


def _registered(ctx: Ctx, web_id: str) -> dict:
    try:
        stream = ctx.stream(web_id)
    except ApiError as exc:
        return {"Source": web_id, "Status": FAILED, "Exception": {"Errors": [exc.message]}}
    return {**_source(ctx, stream), "Status": SUCCEEDED, "LatestMarker": ctx.plant.updates.register(stream)}


def _retrieved(ctx: Ctx, marker: str) -> tuple[dict, int]:
    try:
        stream, changes = ctx.plant.updates.changes(marker)
    except UnknownMarker:
        message = f"The update cache holds no marker '{marker}'; register the stream for updates again."
        return {"RequestedMarker": marker, "Status": FAILED, "Exception": {"Errors": [message]}}, 0
    events = []
    for action, block in changes.blocks():
        event = orjson.loads(jsonfmt.timed_value(block, stream.point, stream.units))
        events.append({"Action": action, **event, "PreviousEventAction": ARCHIVED})
    body = {**_source(ctx, stream), "Status": SUCCEEDED, "Events": events, "RequestedMarker": marker,
            "LatestMarker": changes.latest}
    return body, len(events)


def stream_register(ctx: Ctx, web_id: str) -> Reply:
    item = _registered(ctx, web_id)
    if item["Status"] == FAILED:
        ctx.stream(web_id)  # raises PI's status for this WebID (400 malformed, 404 unknown)
    return Reply(body=item)


def streamset_register(ctx: Ctx) -> Reply:
    web_ids = ctx.getall("webId")
    if not web_ids:
        raise ApiError(400, "The webId parameter is required.")
    items = [_registered(ctx, w) for w in web_ids]
    failed = any(i["Status"] == FAILED for i in items)
    return Reply(207 if failed else 200, {"Items": items, "Links": {}})


def stream_retrieve(ctx: Ctx, marker: str) -> Reply:
    body, n = _retrieved(ctx, marker)
    if body["Status"] == FAILED:
        raise ApiError(404, body["Exception"]["Errors"][0])
    return Reply(body=body, values=n)


def streamset_retrieve(ctx: Ctx) -> Reply:
    markers = ctx.getall("marker")
    if not markers:
        raise ApiError(400, "The marker parameter is required.")
    answers = [_retrieved(ctx, m) for m in markers]
    items = [body for body, _ in answers]
    failed = any(i["Status"] == FAILED for i in items)
    return Reply(207 if failed else 200, {"Items": items, "Links": {}}, values=sum(n for _, n in answers))


def register(router: Router) -> None:
    router.add("POST", "streams/{web_id}/updates", stream_register)
    router.add("POST", "streamsets/updates", streamset_register)
    router.add("GET", "streams/updates/{marker}", stream_retrieve)
    router.add("GET", "streamsets/updates", streamset_retrieve)
