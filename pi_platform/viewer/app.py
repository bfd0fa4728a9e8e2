"""The viewer's Starlette app: four pages (static files), the JSON endpoints they call, and the live feed.

Endpoints are plain functions, so Starlette runs them in its thread pool and a slow Delta read never blocks
the event loop (nor the live page's WebSocket). A malformed parameter is a 400 whose body is one line saying
what to send instead; a lake that cannot be read is a 503 with the storage layer's one-line message.
"""

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pi_platform.errors import PlatformError
from pi_platform.feed.websocket import feed_route
from pi_platform.pitime import PITimeError, parse_time
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import EVENT_FRAMES, STREAM_VALUES, TABLES
from pi_platform.viewer import events, hierarchy, ingestion, points
from pi_platform.viewer.lake import BadRequest, Page, table_summary

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "tree.html", "/events": "events.html", "/live": "live.html", "/ingestion": "ingestion.html"}
# Where a table is best seen; the links on Dagster's asset pages (`/tables/<name>`) land there.
TABLE_PAGES = {"af_elements": "/", "af_attributes": "/", "event_frames": "/events", "alarms": "/events",
               "alarm_kpis": "/events", "stream_values": "/live"}


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def _time(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        return parse_time(text)
    except PITimeError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _day(request: Request, name: str, default: date) -> date:
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name}={text!r} is not a day: use YYYY-MM-DD") from None


def _page(request: Request) -> Page:
    return Page.parse(request.query_params.get("offset"), request.query_params.get("limit"))


def create_app(store: DeltaStore, state_dir: Path, shards: int = 1) -> Starlette:
    """The viewer over the lake `store` and the collector state in `state_dir` (`shards` collectors, each in its
    shard's directory under it, PI_STREAM_SHARDS), with the late-join feed of its `stream_values` at `/feed` (the
    live monitor's WebSocket)."""

    def page(request: Request) -> FileResponse:
        return FileResponse(STATIC / PAGES[request.url.path])

    def table_link(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in TABLES:
            return JSON({"error": f"no table {name!r}: one of {', '.join(TABLES)}"}, status_code=404)
        return RedirectResponse(TABLE_PAGES.get(name, f"/ingestion#{name}"))

    def api_elements(request: Request) -> JSON:
        q = request.query_params
        return JSON(hierarchy.elements(store, _page(request), parent=q.get("parent"), search=q.get("search")))

    def api_attributes(request: Request) -> JSON:
        element = request.query_params.get("element")
        if not element:
            raise BadRequest("element is required: the element's web_id (from /api/elements)")
        return JSON(hierarchy.attributes(store, element, _page(request)))

    def api_points(request: Request) -> JSON:
        return JSON(points.points(store, _page(request), request.query_params.get("search")))

    def api_frames(request: Request) -> JSON:
        q = request.query_params
        start = _time(request, "start") or _newest_frame_day(store)
        end = _time(request, "end") or start + timedelta(days=1)
        return JSON(events.frames(store, _page(request), start=start, end=end, template=q.get("template"),
                                  severity=q.get("severity"), element_web_id=q.get("element")))

    def api_facets(request: Request) -> JSON:
        return JSON({**events.facets(store), "newest_day": _newest_frame_day(store).date()})

    def api_kpis(request: Request) -> JSON:
        end = _day(request, "end", _newest_frame_day(store).date() + timedelta(days=1))
        return JSON(events.alarm_kpis(store, _day(request, "start", end - timedelta(days=14)), end))

    def api_tables(request: Request) -> JSON:
        return JSON(ingestion.tables(store))

    def api_stream(request: Request) -> JSON:
        return JSON(ingestion.stream(store, state_dir, shards))

    routes: list[BaseRoute] = [
        *(Route(path, page) for path in PAGES),
        Route("/tables/{name}", table_link),
        Route("/api/elements", api_elements),
        Route("/api/attributes", api_attributes),
        Route("/api/points", api_points),
        Route("/api/event-frames", api_frames),
        Route("/api/event-frames/facets", api_facets),
        Route("/api/alarm-kpis", api_kpis),
        Route("/api/tables", api_tables),
        Route("/api/stream", api_stream),
        feed_route(store.uri(STREAM_VALUES.name), dict(store.storage_options) or None),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    async def bad_request(request: Request, exc: Exception) -> JSON:
        return JSON({"error": str(exc)}, status_code=400)

    async def unavailable(request: Request, exc: Exception) -> JSON:
        return JSON({"error": str(exc).splitlines()[0]}, status_code=503)

    return Starlette(routes=routes, exception_handlers={BadRequest: bad_request, PlatformError: unavailable})


def _newest_frame_day(store: DeltaStore) -> datetime:
    """Midnight UTC of the newest frame start in the lake (today when there is none): the pages open there."""
    newest = table_summary(store, EVENT_FRAMES).get("newest_data") or datetime.now(timezone.utc)
    return datetime(newest.year, newest.month, newest.day, tzinfo=timezone.utc)
