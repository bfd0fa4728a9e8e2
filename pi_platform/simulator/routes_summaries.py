"""Summary endpoints: `streams/{webId}/summary`, `streamsets/summary`, `streamsets/{webId}/summary`.

Parameters are read and refused here the way PI Web API refuses them (400 for a value it does not know, 409
for a filter expression this server cannot evaluate); the arithmetic is `summaries`.
"""

import numpy as np

from pi_platform.pitime import PITimeError, parse_interval
from pi_platform.simulator import jsonfmt, summaries
from pi_platform.simulator.api import ApiError, Ctx, Reply, Router
from pi_platform.simulator.plant import Stream
from pi_platform.simulator.routes_streams import WEB_EXCEPTION, _stream_identity, adhoc_streams, element_streams

_ERROR_VALUE = {"Name": "Calc Failed", "Value": summaries.CALC_FAILED, "IsSystem": True}


class _Request:
    """The summary parameters of one request, checked once for every stream it names."""

    def __init__(self, ctx: Ctx) -> None:
        self.types = _types(ctx)
        basis = ctx.get("calculationBasis") or "TimeWeighted"
        found = summaries.BASES.get(basis.lower())
        if found is None:
            raise ApiError(400, f"The value '{basis}' is not valid for calculationBasis.")
        self.basis = found
        time_type = ctx.get("timeType") or "Auto"
        self.time_type = next((t for t in summaries.TIME_TYPES if t.lower() == time_type.lower()), "")
        if not self.time_type:
            raise ApiError(400, f"The value '{time_type}' is not valid for timeType.")
        sample_type = ctx.get("sampleType") or "ExpressionRecordedValues"
        if sample_type.lower() not in ("expressionrecordedvalues", "interval"):
            raise ApiError(400, f"The value '{sample_type}' is not valid for sampleType.")
        if ctx.get("sampleInterval"):
            _duration_us(ctx, "sampleInterval")  # only used with a filter expression, but must be readable
        if ctx.get("filterExpression"):
            raise ApiError(409, "The supplied filter expression is not supported by this server.")
        start, end = ctx.time_us("startTime", "*-1d"), ctx.time_us("endTime", "*")
        duration = _duration_us(ctx, "summaryDuration") if ctx.get("summaryDuration") else None
        self.spans = summaries.intervals(start, end, duration)
        if len(self.spans) * len(self.types) > ctx.config.max_returned_items:
            raise ApiError(
                400,
                f"The number of values requested is greater than the maximum allowed ({ctx.config.max_returned_items}).",
            )
        self.now = ctx.plant.clock.now_us()

    def items(self, ctx: Ctx, stream: Stream) -> list[dict]:
        rows = summaries.summarize(ctx.plant, stream.point, self.spans, self.now, self.types, self.basis, self.time_type)
        stamps = jsonfmt.timestamps(np.array([r.timestamp_us for r in rows], dtype=np.int64))
        return [
            {
                "Type": row.type,
                "Value": {
                    "Timestamp": stamp,
                    "Value": _ERROR_VALUE if row.value is None else row.value,
                    "UnitsAbbreviation": row.units,
                    "Good": row.value is not None,
                    "Questionable": False,
                    "Substituted": False,
                    "Annotated": False,
                },
            }
            for row, stamp in zip(rows, stamps)
        ]


def _types(ctx: Ctx) -> list[str]:
    """summaryType, repeated or comma-separated, `All`/`AllForNonNumeric` expanded, in request order."""
    out: list[str] = []
    for raw in ctx.getall("summaryType") or ["Total"]:
        for part in (p.strip() for p in raw.split(",")):
            group = summaries.GROUPS.get(part.lower())
            match = next((t for t in summaries.SUMMARY_TYPES if t.lower() == part.lower()), None)
            if group is None and match is None:
                raise ApiError(400, f"The value '{part}' is not valid for summaryType.")
            out.extend(t for t in (group or (match,)) if t not in out)
    return out


def _duration_us(ctx: Ctx, name: str) -> int:
    raw = ctx.get(name) or ""
    try:
        step = int(parse_interval(raw).total_seconds() * 1_000_000)
    except PITimeError:
        raise ApiError(400, f"The value '{raw}' is not valid for {name}.") from None
    if step <= 0:
        raise ApiError(400, f"The value '{raw}' is not valid for {name}.")
    return step


def stream_summary(ctx: Ctx, web_id: str) -> Reply:
    stream = ctx.stream(web_id)
    request = _Request(ctx)
    if not summaries.is_numeric(stream.point) and any(t not in summaries.NON_NUMERIC_TYPES for t in request.types):
        # PI Web API's documented answer for one stream; stream sets give the error value per item instead,
        # so one digital tag cannot sink a request for a hundred.
        raise ApiError(409, "Count is the only summary type supported on non-numeric streams.")
    items = request.items(ctx, stream)
    return Reply(body={"Links": {}, "Items": items}, values=len(items))


def _streamset(ctx: Ctx, streams: list[Stream]) -> Reply:
    """Items[StreamSummaries], in request order; the web_exception_rate fault breaks a stream's answer midway
    (half its items and a WebException), as it does for value reads."""
    request = _Request(ctx)
    answers = []
    for stream in streams:
        answer = {**_stream_identity(ctx, stream), "Items": request.items(ctx, stream)}
        if ctx.faults.roll(ctx.faults.faults.web_exception_rate):
            answer["Items"] = answer["Items"][: len(answer["Items"]) // 2]
            answer["WebException"] = WEB_EXCEPTION
        answers.append(answer)
    return Reply(body={"Links": {}, "Items": answers}, values=sum(len(a["Items"]) for a in answers))


def streamset_summary(ctx: Ctx) -> Reply:
    return _streamset(ctx, adhoc_streams(ctx))


def streamset_summary_element(ctx: Ctx, web_id: str) -> Reply:
    return _streamset(ctx, element_streams(ctx, web_id))


def register(router: Router) -> None:
    router.add("GET", "streams/{web_id}/summary", stream_summary)
    router.add("GET", "streamsets/summary", streamset_summary)
    router.add("GET", "streamsets/{web_id}/summary", streamset_summary_element)
