"""Values at given instants and plot values: streams/{webId}/recordedattime|recordedattimes|interpolatedattimes|plot
and their streamsets forms (repeated `webId`, or an element's attributes).

Same rendering as routes_streams (value lists as JSON text, selectedFields applied while rendering).
"""

from collections.abc import Callable

import numpy as np

from pi_platform.simulator import readers, sampling
from pi_platform.simulator.api import ApiError, Ctx, Reply, Router
from pi_platform.simulator.plant import Stream
from pi_platform.simulator.routes_streams import (
    _stream_identity,
    adhoc_streams,
    element_streams,
    selected_reply,
    streamset_values,
    timed_value_fragment,
    values_document,
)
from pi_platform.simulator.values import Block

DEFAULT_PLOT_INTERVALS = 24


def _choice(ctx: Ctx, name: str, allowed: tuple[str, ...], default: str) -> str:
    """A case-insensitive enumeration parameter in its canonical spelling, or PI's 400."""
    raw = ctx.get(name) or default
    found = next((a for a in allowed if a.lower() == raw.lower()), None)
    if found is None:
        raise ApiError(400, f"The value '{raw}' is not valid for {name}; use one of {', '.join(allowed)}.")
    return found


def _times(ctx: Ctx) -> np.ndarray:
    """The repeated `time` parameters, in sortOrder (Ascending by default)."""
    raw = ctx.getall("time")
    if not raw:
        raise ApiError(400, "The time parameter is required.")
    times = np.array([ctx.parse_us("time", r) for r in raw], dtype=np.int64)
    times.sort()
    return times[::-1] if _choice(ctx, "sortOrder", ("Ascending", "Descending"), "Ascending") == "Descending" else times


def _recorded_at(ctx: Ctx, stream: Stream, t_us: int) -> Block:
    mode = _choice(ctx, "retrievalMode", sampling.RETRIEVAL_MODES, "Auto")
    return sampling.recorded_at(ctx.plant, stream.point, t_us, mode, ctx.plant.clock.now_us())


def _recorded_at_times(ctx: Ctx, stream: Stream) -> Block:
    return Block.concat([_recorded_at(ctx, stream, int(t)) for t in _times(ctx)])


def _interpolated_at_times(ctx: Ctx, stream: Stream) -> Block:
    return readers.interpolate(ctx.plant, stream.point, _times(ctx), ctx.plant.clock.now_us())


def _plot(ctx: Ctx, stream: Stream) -> Block:
    intervals = ctx.int("intervals", DEFAULT_PLOT_INTERVALS)
    if intervals < 1:
        raise ApiError(400, f"Parameter intervals must be at least 1 (got {intervals}).")
    start, end = ctx.time_us("startTime", "*-1d"), ctx.time_us("endTime", "*")
    return sampling.plot(ctx.plant, stream.point, start, end, intervals, ctx.plant.clock.now_us())


def _stream_list(reader: Callable[[Ctx, Stream], Block]) -> Callable[..., Reply]:
    def handler(ctx: Ctx, web_id: str) -> Reply:
        stream = ctx.stream(web_id)
        block = reader(ctx, stream)
        return selected_reply(ctx, values_document(ctx, stream, block, ("items",)), len(block))

    return handler


def stream_recorded_at_time(ctx: Ctx, web_id: str) -> Reply:
    stream = ctx.stream(web_id)
    block = _recorded_at(ctx, stream, ctx.time_us("time", "*"))
    return selected_reply(ctx, timed_value_fragment(ctx, stream, block), 1)


def _streamset_recorded_at_time(ctx: Ctx, streams: list[Stream]) -> Reply:
    t_us = ctx.time_us("time", "*")
    items = [
        {**_stream_identity(ctx, s), "Value": timed_value_fragment(ctx, s, _recorded_at(ctx, s, t_us), "items", "value")}
        for s in streams
    ]
    return selected_reply(ctx, {"Links": {}, "Items": items}, len(streams))


def register(router: Router) -> None:
    add = router.add
    readers_by_name = {
        "recordedattimes": _recorded_at_times,
        "interpolatedattimes": _interpolated_at_times,
        "plot": _plot,
    }
    add("GET", "streams/{web_id}/recordedattime", stream_recorded_at_time)
    add("GET", "streamsets/recordedattime", lambda ctx: _streamset_recorded_at_time(ctx, adhoc_streams(ctx)))
    add(
        "GET",
        "streamsets/{web_id}/recordedattime",
        lambda ctx, web_id: _streamset_recorded_at_time(ctx, element_streams(ctx, web_id)),
    )
    for name, reader in readers_by_name.items():
        add("GET", f"streams/{{web_id}}/{name}", _stream_list(reader))
        add("GET", f"streamsets/{name}", lambda ctx, r=reader: streamset_values(ctx, adhoc_streams(ctx), r))
        add(
            "GET",
            f"streamsets/{{web_id}}/{name}",
            lambda ctx, web_id, r=reader: streamset_values(ctx, element_streams(ctx, web_id), r),
        )
