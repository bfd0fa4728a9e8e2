"""streams/{webId}/... and streamsets/... value endpoints.

Bodies are assembled as JSON text around the fast value serialiser (jsonfmt), since value lists are
where the bytes are.
"""

from collections.abc import Callable

import numpy as np
import orjson

from pi_platform.pitime import parse_time
from pi_platform.simulator import fields, jsonfmt, readers
from pi_platform.simulator.api import ApiError, Ctx, Reply, Router
from pi_platform.simulator.catalog import (
    Element,
    Point,
    descendants,
    stable_guid,
    wildcard,
)
from pi_platform.simulator.plant import Stream
from pi_platform.simulator.values import Block

Annotator = Callable[[int, str], list[dict]]
WEB_EXCEPTION = {"Errors": ["An error has occurred."], "StatusCode": 500}
VALUE_FIELDS = (*jsonfmt.TIMED_VALUE_FIELDS, "Annotations", "Errors")


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def _recorded_reader(ctx: Ctx, max_count: int) -> Callable[[list[Stream]], list[Block]]:
    """Recorded values of streams under the request's parameters, parsed and checked once per request (a
    stream set names ~50 streams; one `now` for all of them, and their Inside values made in one pass)."""
    plant = ctx.plant
    start = ctx.time_us("startTime", "*-1d")
    end = ctx.time_us("endTime", "*")
    now = plant.clock.now_us()
    boundary = (ctx.get("boundaryType") or "Inside").lower()
    if boundary not in ("inside", "outside", "interpolated"):
        raise ApiError(400, f"The value '{ctx.get('boundaryType')}' is not valid for boundaryType.")
    if ctx.get("filterExpression"):
        raise ApiError(409, "The supplied filter expression is not supported by this server.")

    def bounded(point: Point, block: Block) -> Block:
        lo, hi = min(start, end), max(start, end)
        if boundary == "outside":
            before = readers.last_before(plant, point, lo, now, inclusive=False)
            after = readers.first_after(plant, point, hi, now)
        else:
            edges = readers.interpolate(plant, point, np.array([lo, min(hi, now)], dtype=np.int64), now)
            before, after = edges.take(slice(0, 1)), edges.take(slice(1, 2))
        if end < start:
            before, after = after, before
        return Block.concat([before, block, after]).take(slice(0, max_count))

    def read(streams: list[Stream]) -> list[Block]:
        points = [stream.point for stream in streams]
        blocks = readers.recorded_many(plant, points, start, end, now, max_count)
        if boundary == "inside":
            return blocks
        return [bounded(point, block) for point, block in zip(points, blocks)]

    return read


def _faulted(ctx: Ctx, stream: Stream, block: Block) -> tuple[Block, np.ndarray | None, Annotator | None, bool]:
    """The block with value faults applied: (block, values to replace by per-value Errors, the annotations
    of annotated values when asked for, whether to add a WebException)."""
    faults = ctx.faults
    broken = faults.roll(faults.faults.web_exception_rate)
    if broken:
        block = block.take(slice(0, len(block) // 2))
    errors = None
    spoiled = faults.mask(len(block), faults.faults.value_error_rate)
    if spoiled:
        errors = np.zeros(len(block), dtype=bool)
        errors[spoiled] = True
    notes = None
    if "annotations" in (ctx.get("associations") or "").lower():
        notes = _annotation_maker(ctx, stream, block)
    return block, errors, notes, broken


def _values_texts(
    ctx: Ctx, streams: list[Stream], blocks: list[Block], selected: tuple[str, ...] | None
) -> list[tuple[bytes, bool]]:
    """Each stream's TimedValue list JSON with value faults applied, and whether to add a WebException; the
    plain lists (all but faulted or annotated ones) are rendered together."""
    faulted = [_faulted(ctx, stream, block) for stream, block in zip(streams, blocks)]
    plain = [i for i, (_, errors, notes, _) in enumerate(faulted) if errors is None and notes is None]
    texts = dict(zip(plain, jsonfmt.timed_values_many(
        [faulted[i][0] for i in plain], [streams[i].point for i in plain], [streams[i].units for i in plain], selected
    )))
    out = []
    for i, (stream, (block, errors, notes, broken)) in enumerate(zip(streams, faulted)):
        text = texts.get(i)
        if text is None:
            text = jsonfmt.timed_values_json(block, stream.point, stream.units, errors, notes, selected)
        out.append((text, broken))
    return out


def _annotation_maker(ctx: Ctx, stream: Stream, block: Block) -> Annotator:
    """Deterministic StreamAnnotation objects for annotated values (same text every time they are read)."""
    seed = ctx.plant.seed

    def make(index: int, stamp: str) -> list[dict]:
        ts, pos = int(block.ts[index]), int(block.pos[index])
        guid = stable_guid(seed, "value-annotation", stream.point.index, ts, pos)
        return [
            {
                "Id": str(guid),
                "Name": "",
                "Description": "",
                "Value": f"Operator comment on {stream.point.name}",
                "Creator": "PISIM\\operator1",
                "CreationDate": stamp,
                "Modifier": "PISIM\\operator1",
                "ModifyDate": stamp,
            }
        ]

    return make


def _value_fields(ctx: Ctx, *path: str) -> tuple[str, ...] | None:
    """The TimedValue fields selectedFields keeps at `path` (lower-case names from the root); None = all."""
    if ctx.selection is None:
        return None
    return fields.field_names(fields.sub(ctx.selection, *path), VALUE_FIELDS)


def selected_reply(ctx: Ctx, document: "dict | orjson.Fragment", values: int) -> Reply:
    """A body whose value lists (orjson Fragments) were rendered with only the selected fields; the rest of
    the document is filtered here, so the router leaves it alone."""
    return Reply(body=orjson.dumps(fields.select(document, ctx.selection)), values=values, selected=True)


def values_document(ctx: Ctx, stream: Stream, block: Block, path: tuple[str, ...]) -> dict:
    """`{Links, Items, UnitsAbbreviation[, WebException]}` of a value list, faults applied."""
    return values_documents(ctx, [stream], [block], path)[0]


def values_documents(ctx: Ctx, streams: list[Stream], blocks: list[Block], path: tuple[str, ...]) -> list[dict]:
    """`values_document` of several streams (their lists rendered together)."""
    documents = []
    for stream, (text, broken) in zip(streams, _values_texts(ctx, streams, blocks, _value_fields(ctx, *path))):
        document = {"Links": {}, "Items": orjson.Fragment(text), "UnitsAbbreviation": stream.units}
        if broken:
            document["WebException"] = WEB_EXCEPTION
        documents.append(document)
    return documents


def timed_value_fragment(ctx: Ctx, stream: Stream, block: Block, *path: str) -> orjson.Fragment:
    return orjson.Fragment(jsonfmt.timed_value(block, stream.point, stream.units, _value_fields(ctx, *path)))


def stream_recorded(ctx: Ctx, web_id: str) -> Reply:
    stream = ctx.stream(web_id)
    block = _recorded_reader(ctx, ctx.max_count())([stream])[0]
    return selected_reply(ctx, values_document(ctx, stream, block, ("items",)), len(block))


def _end_block(ctx: Ctx, stream: Stream) -> Block:
    now = ctx.plant.clock.now_us()
    block = readers.last_before(ctx.plant, stream.point, now, now)
    return block if len(block) else readers.no_data(np.array([now], dtype=np.int64))


def _value_block(ctx: Ctx, stream: Stream) -> Block:
    """No time: the snapshot (latest exception event, which for a flat tag may be newer than the archive)."""
    if ctx.get("time") is None:
        return ctx.plant.snapshot_block(stream.point)
    at = ctx.time_us("time", "*")
    return readers.interpolate(ctx.plant, stream.point, np.array([at], dtype=np.int64), ctx.plant.clock.now_us())


def stream_end(ctx: Ctx, web_id: str) -> Reply:
    stream = ctx.stream(web_id)
    return selected_reply(ctx, timed_value_fragment(ctx, stream, _end_block(ctx, stream)), 1)


def stream_value(ctx: Ctx, web_id: str) -> Reply:
    stream = ctx.stream(web_id)
    return selected_reply(ctx, timed_value_fragment(ctx, stream, _value_block(ctx, stream)), 1)


def _interpolated_block(ctx: Ctx, stream: Stream) -> Block:
    start = ctx.time_us("startTime", "*-1d")
    end = ctx.time_us("endTime", "*")
    interval = ctx.get("interval") or "1h"
    try:
        step_us = int(
            (parse_time(f"2000-01-01T00:00:00Z+{interval}") - parse_time("2000-01-01T00:00:00Z")).total_seconds() * 1e6
        )
    except ValueError:
        raise ApiError(400, f"The value '{interval}' is not valid for interval.") from None
    if step_us <= 0:
        raise ApiError(400, f"The value '{interval}' is not valid for interval.")
    count = (end - start) // step_us + 1 if end >= start else 0
    if count > ctx.config.max_returned_items:
        raise ApiError(
            400,
            f"The number of values requested is greater than the maximum allowed ({ctx.config.max_returned_items}).",
        )
    times = start + np.arange(max(count, 0), dtype=np.int64) * step_us
    return readers.interpolate(ctx.plant, stream.point, times, ctx.plant.clock.now_us())


def stream_interpolated(ctx: Ctx, web_id: str) -> Reply:
    stream = ctx.stream(web_id)
    block = _interpolated_block(ctx, stream)
    text = jsonfmt.timed_values(block, stream.point, stream.units)
    return Reply(
        body=f'{{"Links":{{}},"Items":{text},"UnitsAbbreviation":{_json(stream.units)}}}'.encode(), values=len(block)
    )


# ---- stream sets ------------------------------------------------------------------------------------------
def adhoc_streams(ctx: Ctx) -> list[Stream]:
    web_ids = ctx.getall("webId")
    if not web_ids:
        raise ApiError(400, "The webId parameter is required.")
    return [ctx.stream(w) for w in web_ids]


def element_streams(ctx: Ctx, web_id: str) -> list[Stream]:
    element: Element = ctx.lookup(web_id, Element)  # type: ignore[assignment]
    elements = descendants([element]) if ctx.bool("searchFullHierarchy", False) else [element]
    name = wildcard(ctx.get("nameFilter"))
    category = (ctx.get("categoryName") or "").upper()
    streams = []
    for e in elements:
        for a in e.attributes:
            if a.point is None or (name is not None and not name.match(a.name)) or ctx.plant.is_deleted(a.point):
                continue
            if category and category not in (c.upper() for c in a.categories):
                continue
            streams.append(Stream(a.web_id, a.point, a))
    return streams


def _stream_header(ctx: Ctx, stream: Stream) -> str:
    return (
        f'{{"WebId":{_json(ctx.emit(stream.canonical_web_id))},"Name":{_json(stream.name)},'
        f'"Path":{_json(stream.path)},"Links":{{}}'
    )


def _stream_identity(ctx: Ctx, stream: Stream) -> dict:
    return {"WebId": ctx.emit(stream.canonical_web_id), "Name": stream.name, "Path": stream.path, "Links": {}}


def streamset_values(ctx: Ctx, streams: list[Stream], reader: Callable[[Ctx, Stream], Block]) -> Reply:
    """Items[StreamValues]: one value list per stream, in request order."""
    return streamset_blocks(ctx, streams, [reader(ctx, stream) for stream in streams])


def streamset_blocks(ctx: Ctx, streams: list[Stream], blocks: list[Block]) -> Reply:
    """Items[StreamValues] of the streams' value blocks."""
    items = []
    for stream, document in zip(streams, values_documents(ctx, streams, blocks, ("items", "items"))):
        del document["Links"]
        items.append({**_stream_identity(ctx, stream), **document})
    return selected_reply(ctx, {"Links": {}, "Items": items}, sum(len(block) for block in blocks))


def _streamset_recorded(ctx: Ctx, streams: list[Stream]) -> Reply:
    return streamset_blocks(ctx, streams, _recorded_reader(ctx, ctx.max_count())(streams))


def _streamset_single(ctx: Ctx, streams: list[Stream], reader: Callable[[Ctx, Stream], Block], as_items: bool) -> Reply:
    """Items[StreamValue] (`Value`), or for `end` one-value Items[StreamValues]."""
    items = []
    for stream in streams:
        block = reader(ctx, stream)
        if as_items:
            value = jsonfmt.timed_value(block, stream.point, stream.units, _value_fields(ctx, "items", "items"))
            field = {"Items": orjson.Fragment(f"[{value}]"), "UnitsAbbreviation": stream.units}
        else:
            field = {"Value": timed_value_fragment(ctx, stream, block, "items", "value")}
        items.append({**_stream_identity(ctx, stream), **field})
    return selected_reply(ctx, {"Links": {}, "Items": items}, len(streams))


def streamset_recorded(ctx: Ctx) -> Reply:
    return _streamset_recorded(ctx, adhoc_streams(ctx))


def streamset_recorded_element(ctx: Ctx, web_id: str) -> Reply:
    return _streamset_recorded(ctx, element_streams(ctx, web_id))


def streamset_end(ctx: Ctx) -> Reply:
    return _streamset_single(ctx, adhoc_streams(ctx), _end_block, as_items=True)


def streamset_end_element(ctx: Ctx, web_id: str) -> Reply:
    return _streamset_single(ctx, element_streams(ctx, web_id), _end_block, as_items=True)


def streamset_value(ctx: Ctx) -> Reply:
    return _streamset_single(ctx, adhoc_streams(ctx), _value_block, as_items=False)


def streamset_value_element(ctx: Ctx, web_id: str) -> Reply:
    return _streamset_single(ctx, element_streams(ctx, web_id), _value_block, as_items=False)


def streamset_interpolated(ctx: Ctx) -> Reply:
    parts, total = [], 0
    for stream in adhoc_streams(ctx):
        block = _interpolated_block(ctx, stream)
        text = jsonfmt.timed_values(block, stream.point, stream.units)
        parts.append(f'{_stream_header(ctx, stream)},"Items":{text},"UnitsAbbreviation":{_json(stream.units)}}}')
        total += len(block)
    return Reply(body=('{"Links":{},"Items":[' + ",".join(parts) + "]}").encode(), values=total)


def register(router: Router) -> None:
    add = router.add
    add("GET", "streams/{web_id}/recorded", stream_recorded)
    add("GET", "streams/{web_id}/value", stream_value)
    add("GET", "streams/{web_id}/end", stream_end)
    add("GET", "streams/{web_id}/interpolated", stream_interpolated)
    add("GET", "streamsets/recorded", streamset_recorded)
    add("GET", "streamsets/end", streamset_end)
    add("GET", "streamsets/value", streamset_value)
    add("GET", "streamsets/interpolated", streamset_interpolated)
    add("GET", "streamsets/{web_id}/recorded", streamset_recorded_element)
    add("GET", "streamsets/{web_id}/end", streamset_end_element)
    add("GET", "streamsets/{web_id}/value", streamset_value_element)
