"""Admin API outside /piwebapi: faults, stuck/deleted tags, failed interfaces, dropping channels, clock, statistics,
operators' history edits.

Tests and the streaming collector's chaos runs drive the simulator through this; it is unauthenticated
by design (bind the simulator to loopback).
"""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pi_platform.pitime import PITimeError, format_time, from_us, parse_time
from pi_platform.simulator.edits import EditError
from pi_platform.simulator.failures import INTERFACE, MODES, SILENT, TAG, FailureError
from pi_platform.simulator.plant import ObjectNotFound

if TYPE_CHECKING:
    from pi_platform.simulator.app import SimulatorApp


def build_admin(app: "SimulatorApp") -> Starlette:
    async def body(request: Request) -> dict:
        raw = await request.body()
        if not raw:
            return {}
        try:
            data = await request.json()
        except ValueError:
            raise AdminError("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise AdminError("body must be a JSON object")
        return data

    async def faults(request: Request) -> JSONResponse:
        if request.method == "POST":
            data = await body(request)
            if data.pop("reset", False):
                app.faults.reset()
            try:
                app.faults.update(data)
            except (TypeError, ValueError) as exc:
                raise AdminError(str(exc)) from None
        return JSONResponse(app.faults.faults.as_dict())

    def names_of(data: dict) -> list[str]:
        names = data.get("names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise AdminError('expected {"names": ["tag", ...]}')
        return names

    def at_of(data: dict) -> datetime | None:
        raw = data.get("at")
        try:
            return parse_time(raw, now=app.plant.now()) if raw else None
        except PITimeError as exc:
            raise AdminError(str(exc)) from None

    def mode_of(data: dict) -> dict[str, str]:
        mode = data.get("mode", SILENT)
        if mode not in MODES:
            raise AdminError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        return {"mode": mode}

    def switch(method: str, done_key: str, with_mode: bool = False) -> Callable[[Request], Awaitable[JSONResponse]]:
        """POST handler calling plant.<method>(subject, at[, mode]): the subject is the interface named by the path
        (fail/restore) or the tags named by the body (stick, resume, delete); all answer the same shape."""

        async def handler(request: Request) -> JSONResponse:
            data = await body(request)
            pointsource = request.path_params.get("pointsource")
            options = mode_of(data) if with_mode else {}
            try:
                subject = pointsource if pointsource is not None else names_of(data)
                done = getattr(app.plant, method)(subject, at_of(data), **options)
            except ObjectNotFound as exc:
                raise AdminError(f"unknown tag {exc.ref!r}") from None
            except FailureError as exc:
                raise AdminError(str(exc)) from None
            reply = {done_key: done, "all_paused": app.plant.paused(), "at": format_time(app.plant.now())}
            return JSONResponse(reply if pointsource is None else {"interface": pointsource, **reply})

        return handler

    pause = switch("pause", "paused", with_mode=True)
    resume = switch("resume", "resumed")
    delete = switch("delete", "deleted")
    fail_interface = switch("fail_interface", "failed", with_mode=True)
    restore_interface = switch("restore_interface", "restored")

    async def paused(request: Request) -> JSONResponse:
        windows: dict[str, list[list[int | None]]] = {}
        for failure in app.plant.failures():
            if failure.kind == TAG:
                end = None if failure.is_open else failure.end_us
                windows.setdefault(failure.target, []).append([failure.start_us, end])
        return JSONResponse({"paused": app.plant.paused(), "windows_us": windows})

    async def interfaces(request: Request) -> JSONResponse:
        down = {f.target: f.as_json() for f in app.plant.failures() if f.kind == INTERFACE and f.is_open}
        listing = [
            {"pointsource": name, "id": i + 1, "tags": len(points), "failure": down.get(name)}
            for i, (name, points) in enumerate(app.plant.interfaces().items())
        ]
        return JSONResponse({"interfaces": listing})

    async def failures(request: Request) -> JSONResponse:
        return JSONResponse({"failures": [f.as_json() for f in app.plant.failures()]})

    async def drop(request: Request) -> JSONResponse:
        return JSONResponse({"dropped": app.channels.drop_all()})

    async def channels(request: Request) -> JSONResponse:
        return JSONResponse({"open": app.channels.open_count, "opened_total": app.channels.opened_total})

    async def clock(request: Request) -> JSONResponse:
        if request.method == "POST":
            data = await body(request)
            try:
                frozen = parse_time(data["now"]) if data.get("now") else None
            except PITimeError as exc:
                raise AdminError(str(exc)) from None
            offset = timedelta(seconds=float(data["offset_s"])) if "offset_s" in data else None
            app.plant.clock.set(frozen, offset)
        return JSONResponse({"now": format_time(app.plant.now()), "frozen": app.plant.clock.frozen is not None})

    async def requests(request: Request) -> JSONResponse:
        """The latest requests under /piwebapi (method, path, query string), oldest first."""
        return JSONResponse({"requests": [{"method": m, "path": p, "query": q} for m, p, q in list(app.stats.log)]})

    async def edit(request: Request) -> JSONResponse:
        """An operator's history edit: {"name": tag, "at": time, "value": number} replaces (or inserts) the
        archived value at `at`; "value": null deletes it (see edits.py)."""
        data = await body(request)
        value = data.get("value")
        if not isinstance(data.get("name"), str) or not data.get("at") or not (value is None or isinstance(value, (int, float))):
            raise AdminError('expected {"name": "tag", "at": "2024-05-01T10:00:00Z", "value": 1.5 or null}')
        try:
            done = app.plant.edit(data["name"], at_of(data), None if value is None else float(value))
        except ObjectNotFound as exc:
            raise AdminError(f"unknown tag {exc.ref!r}") from None
        except EditError as exc:
            raise AdminError(str(exc)) from None
        return JSONResponse({"name": data["name"], "timestamp": format_time(from_us(done.ts_us)), "action": done.action,
                             "value": done.value, "seq": done.seq})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({**app.stats.as_dict(), "open_channels": app.channels.open_count})

    async def admin_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    return Starlette(
        routes=[
            Route("/admin/faults", faults, methods=["GET", "POST"]),
            Route("/admin/streams/pause", pause, methods=["POST"]),
            Route("/admin/streams/resume", resume, methods=["POST"]),
            Route("/admin/streams/paused", paused, methods=["GET"]),
            Route("/admin/tags/delete", delete, methods=["POST"]),
            Route("/admin/interfaces", interfaces, methods=["GET"]),
            Route("/admin/interfaces/{pointsource}/fail", fail_interface, methods=["POST"]),
            Route("/admin/interfaces/{pointsource}/restore", restore_interface, methods=["POST"]),
            Route("/admin/failures", failures, methods=["GET"]),
            Route("/admin/channels/drop", drop, methods=["POST"]),
            Route("/admin/channels", channels, methods=["GET"]),
            Route("/admin/clock", clock, methods=["GET", "POST"]),
            Route("/admin/stats", stats, methods=["GET"]),
            Route("/admin/history/edit", edit, methods=["POST"]),
            Route("/admin/requests", requests, methods=["GET"]),
        ],
        exception_handlers={AdminError: admin_error},
    )


class AdminError(ValueError):
    """Bad admin request; answered with 400 {"error": message}."""
