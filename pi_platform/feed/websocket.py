"""`/feed`: the late-join feed over a WebSocket, for the web viewer and any browser or script.

Query: `?since=<ISO or PI time>` (default `*`, now) and `tag=<name or WebID>` (repeatable; none = every tag).
The server sends `{"type": "values", "rows": [...]}` messages (rows as `records.to_records`: web_id, name,
timestamp ISO UTC, value, value_str, digital_state, flags, ...), replay first, then exactly one
`{"type": "live"}` when the replay is done, then live rows as they commit. A bad query or a feed that cannot
go on gets `{"type": "error", "message": "<one line>"}` and the socket is closed (1008 bad request, 1011 after).

A client that leaves is noticed by a receive loop running beside the sender, so a follower never keeps
polling the table for a socket nobody reads.
"""

import asyncio

import orjson

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pi_platform.errors import PlatformError, user_message
from pi_platform.feed.follow import POLL_INTERVAL_S, Feed
from pi_platform.feed.records import values_message
from pi_platform.feed.source import stream_values_location

LIVE_MESSAGE = '{"type":"live"}'


def feed_route(table_uri: str | None = None, storage_options: dict[str, str] | None = None, *,
               path: str = "/feed", poll_interval_s: float = POLL_INTERVAL_S) -> WebSocketRoute:
    """A Starlette route serving the feed of `table_uri` (default: `stream_values` of the configured lake)."""

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        uri, options = (table_uri, storage_options) if table_uri else stream_values_location()
        try:
            feed = Feed(uri, options, websocket.query_params.get("since") or None,
                        websocket.query_params.getlist("tag"), poll_interval_s=poll_interval_s)
        except PlatformError as exc:
            await _refuse(websocket, exc, code=1008)
            return
        sender = asyncio.create_task(_send(websocket, feed))
        receiver = asyncio.create_task(_until_disconnect(websocket))
        done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if sender in done and isinstance(sender.exception(), PlatformError):
            await _refuse(websocket, sender.exception(), code=1011)  # type: ignore[arg-type]
        elif sender in done and sender.exception() is not None:
            raise sender.exception()  # type: ignore[misc]

    return WebSocketRoute(path, endpoint)


async def _send(websocket: WebSocket, feed: Feed) -> None:
    async for batch in feed.abatches():
        if batch.kind == "caught_up":
            text = LIVE_MESSAGE
        elif batch.rows.num_rows:
            text = values_message(batch.rows)
        else:
            continue
        if not await _sent(websocket, text):
            return


async def _sent(websocket: WebSocket, text: str) -> bool:
    """False when the client went away mid-send (starlette raises RuntimeError on a closed socket)."""
    try:
        await websocket.send_text(text)
        return True
    except (WebSocketDisconnect, RuntimeError, OSError):
        return False


async def _until_disconnect(websocket: WebSocket) -> None:
    """Clients send nothing; a disconnect is the only message that matters."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _refuse(websocket: WebSocket, exc: PlatformError, *, code: int) -> None:
    if await _sent(websocket, orjson.dumps({"type": "error", "message": user_message(exc)}).decode()):
        await websocket.close(code=code)
