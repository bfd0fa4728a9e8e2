"""PI Web API channels: push-only WebSockets whose subscription is the URL.

Each poll (every `channel_poll_interval_s`) pushes, per stream, the values whose timestamp passed since
the previous poll plus the corrections whose time passed (re-sent with Substituted=true), computed from
the same plant as /recorded, so a channel's output folded by (stream, timestamp, position) equals what
/recorded returns afterwards. Streams without changes are left out; after `heartbeatRate` empty polls an
empty `{"Links":{},"Items":[]}` is sent. Client frames are ignored; auth and WebID errors are refused
with a plain HTTP response before the upgrade.
"""

import asyncio
import contextlib
import re
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import numpy as np
import orjson
from starlette.types import Receive, Scope, Send

from pi_platform.simulator import jsonfmt, readers
from pi_platform.simulator.api import ApiError, Ctx, Reply, error_reply, scope_headers
from pi_platform.simulator.plant import Stream
from pi_platform.simulator.routes_streams import adhoc_streams, element_streams
from pi_platform.simulator.values import CORRECTION_MAX_DELAY_US, NEVER, Block

if TYPE_CHECKING:
    from pi_platform.simulator.app import SimulatorApp

_STREAM = re.compile(r"^/piwebapi/streams/([^/]+)/channel/?$", re.IGNORECASE)
_ADHOC = re.compile(r"^/piwebapi/streamsets/channel/?$", re.IGNORECASE)
_ELEMENT = re.compile(r"^/piwebapi/streamsets/([^/]+)/channel/?$", re.IGNORECASE)
EMPTY_MESSAGE = '{"Links":{},"Items":[]}'


class ChannelHub:
    """Open channels, so the admin API can drop them all and tests can count them."""

    def __init__(self, app: "SimulatorApp") -> None:
        self.app = app
        self._open: set["Channel"] = set()
        self.opened_total = 0

    @property
    def open_count(self) -> int:
        return len(self._open)

    def instances(self) -> list["Channel"]:
        """Open channels, oldest first (GET channels/instances)."""
        return sorted(self._open, key=lambda c: c.opened)

    def drop_all(self) -> int:
        channels = list(self._open)
        for channel in channels:
            channel.drop()
        return len(channels)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = scope_headers(scope)
        refused, auth_headers = self.app.admit(scope, headers)
        if refused is None:
            try:
                streams, options = self._subscription(scope, headers)
            except ApiError as exc:
                refused = error_reply(exc.status, exc.message)
        if refused is not None:
            await _deny(send, refused)
            return
        accept_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in auth_headers]  # Kerberos mutual auth
        await send({"type": "websocket.accept", "headers": accept_headers})
        channel = Channel(self.app, streams, options, receive, send)
        self._open.add(channel)
        self.opened_total += 1
        try:
            await channel.run()
        finally:
            self._open.discard(channel)

    def _subscription(self, scope: Scope, headers: dict[str, str]) -> tuple[list[Stream], dict[str, object]]:
        path = scope["path"]
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        host = headers.get("host", "localhost")
        ctx = Ctx(self.app.plant, self.app.config, self.app.faults, f"http://{host}/piwebapi", "GET", path, query)
        if (match := _STREAM.match(path)) is not None:
            streams = [ctx.stream(match.group(1))]
        elif _ADHOC.match(path):
            streams = adhoc_streams(ctx)
        elif (match := _ELEMENT.match(path)) is not None:
            streams = element_streams(ctx, match.group(1))
        else:
            raise ApiError(404, f"No channel at '{path}'.")
        options = {
            "initial": bool(ctx.bool("includeInitialValues", False)),
            "heartbeat": ctx.int("heartbeatRate", 0),
            "emit": ctx.emit,
        }
        return streams, options


class Channel:
    def __init__(self, app: "SimulatorApp", streams: list[Stream], options: dict, receive: Receive, send: Send) -> None:
        self.app = app
        self.streams = streams
        self.options = options
        self.receive = receive
        self._send = send
        self._closed = asyncio.Event()
        self._dropped = False
        self.opened = time.monotonic()
        # What channels/instances reports: an id, when it opened, messages pushed and when the last one went.
        self.id = str(uuid.uuid4())
        self.started_us = app.plant.clock.now_us()
        self.sent_count = 0
        self.last_sent_us: int | None = None

    async def send(self, message: dict) -> None:
        if message.get("type") == "websocket.send":
            self.sent_count += 1
            self.last_sent_us = self.app.plant.clock.now_us()
        await self._send(message)

    def drop(self) -> None:
        self._dropped = True
        self._closed.set()

    async def run(self) -> None:
        plant, config = self.app.plant, self.app.config
        listener = asyncio.create_task(self._listen())
        last = plant.clock.now_us()
        empty_polls = 0
        try:
            # Polls generate values and JSON (CPU-bound): run them off the event loop so other sockets keep moving.
            initial = await asyncio.to_thread(self._start, last)
            if initial is not None:
                await self.send({"type": "websocket.send", "text": initial})
            while not self._closed.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), timeout=config.channel_poll_interval_s)
                if self._closed.is_set():
                    break
                interval = self.app.faults.faults.channel_drop_interval_s
                if interval > 0 and time.monotonic() - self.opened >= interval:
                    self._dropped = True
                    break
                now = plant.clock.now_us()
                message = None
                if now > last:
                    message = await asyncio.to_thread(self._poll, last, now)
                    last = now
                if message is not None:
                    empty_polls = 0
                    await self.send({"type": "websocket.send", "text": message})
                else:
                    empty_polls += 1
                    heartbeat = int(self.options["heartbeat"])
                    if heartbeat > 0 and empty_polls >= heartbeat:
                        empty_polls = 0
                        await self.send({"type": "websocket.send", "text": EMPTY_MESSAGE})
        except (OSError, RuntimeError):
            self._closed.set()
        finally:
            listener.cancel()
            # 1011 tells the client the server broke the channel (drop fault / admin drop); 1000 is a normal close.
            with contextlib.suppress(Exception):
                await self.send({"type": "websocket.close", "code": 1011 if self._dropped else 1000})

    def _start(self, now: int) -> str | None:
        """Remember corrections still to come for values already in PI; the includeInitialValues message."""
        # Per stream: (timestamps, correction times) of values whose correction has not happened yet.
        self._pending = [self._pending_at_start(s, now) for s in self.streams]
        if not self.options["initial"]:
            return None
        return self._message([(s, self._initial(s, now)) for s in self.streams])

    def _poll(self, last: int, now: int) -> str | None:
        changes = [(s, self._changes(i, s, last, now)) for i, s in enumerate(self.streams)]
        changed = [(s, b) for s, b in changes if b is not None and len(b)]
        return self._message(changed) if changed else None

    async def _listen(self) -> None:
        """Drain client frames (ignored, as on a real server) and notice the disconnect."""
        with contextlib.suppress(Exception):
            while True:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    break
        self._closed.set()

    def _initial(self, stream: Stream, now: int) -> Block:
        """The current value; the whole group if several values share its timestamp, so positions stay right."""
        last = readers.last_before(self.app.plant, stream.point, now, now)
        if not len(last):
            return readers.no_data(np.array([now], dtype=np.int64))
        t = int(last.ts[0])
        return self.app.plant.block(stream.point, t, t, now)

    def _pending_at_start(self, stream: Stream, now: int) -> tuple[np.ndarray, np.ndarray]:
        recent = self.app.plant.block(stream.point, now - CORRECTION_MAX_DELAY_US, now, now)
        future = (recent.corr_at > now) & (recent.corr_at != NEVER)
        return recent.ts[future], recent.corr_at[future]

    def _changes(self, index: int, stream: Stream, last: int, now: int) -> Block | None:
        """Values stamped in (last, now] plus corrections that came due; only the new window is generated."""
        plant = self.app.plant
        stamps, due_at = self._pending[index]
        if not (len(due_at) and due_at.min() <= now) and not plant.any_between(stream.point, last + 1, now, now):
            return None
        fresh = plant.block(stream.point, last + 1, now, now)
        future = (fresh.corr_at > now) & (fresh.corr_at != NEVER)
        if future.any():
            stamps, due_at = np.concatenate([stamps, fresh.ts[future]]), np.concatenate([due_at, fresh.corr_at[future]])
        due = due_at <= now
        self._pending[index] = (stamps[~due], due_at[~due])
        if not due.any():
            return fresh
        # Corrected values are alone at their timestamp, so re-reading that instant gives exactly the new value.
        corrected = [plant.block(stream.point, int(t), int(t), now) for t in np.unique(stamps[due])]
        return Block.concat([*corrected, fresh])

    def _message(self, changes: list[tuple[Stream, Block]]) -> str:
        emit = self.options["emit"]
        parts = []
        for stream, block in changes:
            values = jsonfmt.timed_values(block, stream.point, stream.units)
            parts.append(
                f'{{"WebId":{orjson.dumps(emit(stream.canonical_web_id)).decode()},"Name":{orjson.dumps(stream.name).decode()},'
                f'"Path":{orjson.dumps(stream.path).decode()},"Links":{{}},"Items":{values},'
                f'"UnitsAbbreviation":{orjson.dumps(stream.units).decode()}}}'
            )
            self.app.stats.values += len(block)
        return '{"Links":{},"Items":[' + ",".join(parts) + "]}"


async def _deny(send: Send, reply: Reply) -> None:
    content = reply.content()
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(content)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    await send({"type": "websocket.http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": content})
