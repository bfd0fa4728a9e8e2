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
from pi_platform.simulator.ahead import ChannelAhead, Corrections, corrected, count_items
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
        self._wake: asyncio.Future[None] | None = None  # what a pause between polls waits on
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dropped = False
        self.opened = time.monotonic()
        # What channels/instances reports: an id, when it opened, messages pushed and when the last one went.
        self.id = str(uuid.uuid4())
        self.started_us = app.plant.clock.now_us()
        self.sent_count = 0
        self.last_sent_us: int | None = None
        emit = options["emit"]
        # Each stream's StreamValues object around its items, built once.
        self._heads = [
            f'{{"WebId":{orjson.dumps(emit(s.canonical_web_id)).decode()},"Name":{orjson.dumps(s.name).decode()},'
            f'"Path":{orjson.dumps(s.path).decode()},"Links":{{}},"Items":['
            for s in streams
        ]
        self._tails = [f'],"UnitsAbbreviation":{orjson.dumps(s.units).decode()}}}' for s in streams]
        self._ahead: ChannelAhead | None = None  # set by _start
        self._pending = Corrections.empty()  # corrections still to come for values already sent
        self._generated = np.zeros(len(streams), dtype=bool)
        self._generated_at = -1  # the plant's history_changes() _generated was computed at

    async def send(self, message: dict) -> None:
        if message.get("type") == "websocket.send":
            self.sent_count += 1
            self.last_sent_us = self.app.plant.clock.now_us()
        await self._send(message)

    def drop(self) -> None:
        """From any thread (admin requests run off the loop): the channel closes at once."""
        self._dropped = True
        self._closed.set()
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: so is the channel
                self._loop.call_soon_threadsafe(self._wake_up)

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _pause(self, until: float) -> None:
        """Until `until` (time.monotonic) or the channel's close: one future and one timer per poll, where
        `asyncio.wait_for` cost a task, a waiter and a cancellation."""
        loop = asyncio.get_running_loop()
        self._wake = loop.create_future()
        timer = loop.call_later(max(0.0, until - time.monotonic()), self._wake_up)
        try:
            await self._wake
        finally:
            timer.cancel()

    async def run(self) -> None:
        plant, config = self.app.plant, self.app.config
        self._loop = asyncio.get_running_loop()
        listener = asyncio.create_task(self._listen())
        last = plant.clock.now_us()
        empty_polls = 0
        interval = config.channel_poll_interval_s
        try:
            # Polls generate values and JSON (CPU-bound): run them off the event loop so other sockets keep moving.
            initial = await asyncio.to_thread(self._start, last)
            if initial is not None:
                await self.send({"type": "websocket.send", "text": initial})
            # Polls keep a fixed cadence from the opening (a slow poll does not push every later one back), at a
            # phase of their own so a client's channels are not all polled, and sent, in the same instant.
            tick = time.monotonic() + interval * (int(self.id[:8], 16) / 0x1_0000_0000)
            while not self._closed.is_set():
                await self._pause(tick)
                awake = time.monotonic()
                tick = tick + interval if tick + interval > awake else awake + interval  # missed ticks are skipped
                if self._closed.is_set():
                    break
                drop_after = self.app.faults.faults.channel_drop_interval_s
                if drop_after > 0 and time.monotonic() - self.opened >= drop_after:
                    self._dropped = True
                    break
                now = plant.clock.now_us()
                message = None
                if now > last:
                    # A poll that only cuts text rendered before (well under a millisecond) runs on the loop,
                    # sparing a thread hop per poll; one that renders a span or reads the plant runs off it.
                    if self._ahead is not None and self._ahead.ready(now) and self._generated_now().all():
                        message = self._poll(last, now)
                    else:
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
        plant = self.app.plant
        generated = self._generated_now()
        self._pending = Corrections.concat(
            [self._remember(i, plant.block(s.point, now - CORRECTION_MAX_DELAY_US, now, now), now, generated[i])
             for i, s in enumerate(self.streams)] or [Corrections.empty()])
        poll_us = int(self.app.config.channel_poll_interval_s * 1e6)
        self._ahead = ChannelAhead(plant, self.streams, now, poll_us, int(self.id[:8], 16) / 0x1_0000_0000)
        if not self.options["initial"]:
            return None
        changes = {i: [self._json(s, self._initial(s, now))[1:-1]] for i, s in enumerate(self.streams)}
        return self._message(changes, sum(count_items(p[0]) for p in changes.values()))

    def _poll(self, last: int, now: int) -> str | None:
        """Per stream: the corrections that came due, then the values stamped in (last, now]."""
        assert self._ahead is not None
        plant = self.app.plant
        generated = self._generated_now()
        changes = self._due(now, generated)
        count = sum(count_items(piece) for pieces in changes.values() for piece in pieces)  # a few corrections
        fresh, fresh_count, later = self._ahead.take(last, now, generated)
        count += fresh_count
        for index, pieces in fresh.items():
            changes.setdefault(index, []).extend(pieces)
        remembered = [later]
        for index in np.flatnonzero(~generated).tolist():
            stream = self.streams[index]
            if plant.any_between(stream.point, last + 1, now, now):
                block = plant.block(stream.point, last + 1, now, now)
                remembered.append(self._remember(index, block, now))
                if len(block):
                    changes.setdefault(index, []).append(self._json(stream, block)[1:-1])
                    count += len(block)
        self._pending = Corrections.concat([self._pending, *remembered])
        return self._message(changes, count) if changes else None

    def _generated_now(self) -> np.ndarray:
        """Which streams are the generator's output as it stands (recomputed only when failures or edits came)."""
        plant = self.app.plant
        if plant.history_changes() != self._generated_at:
            self._generated_at = plant.history_changes()
            self._generated = np.array([plant.is_generated(s.point) for s in self.streams], dtype=bool)
        return self._generated

    def _due(self, now: int, generated: np.ndarray) -> dict[int, list[str]]:
        """Corrections whose time came, re-sent with Substituted=true, per stream in timestamp order."""
        due = self._pending.due <= now
        if not due.any():
            return {}
        came = self._pending.take(due)
        self._pending = self._pending.take(~due)
        order = np.lexsort((came.ts, came.stream))
        plant = self.app.plant
        changes: dict[int, list[str]] = {}
        for index, ts, text in zip(came.stream[order].tolist(), came.ts[order].tolist(), came.text[order].tolist()):
            if text is None or not generated[index]:
                # Corrected values are alone at their timestamp, so re-reading that instant gives exactly the new
                # value, failures and edits included (nothing, if a failure covers it now).
                stream = self.streams[index]
                text = self._json(stream, plant.block(stream.point, ts, ts, now))[1:-1]
            if text:
                changes.setdefault(index, []).append(text)
        return changes

    def _remember(self, index: int, block: Block, now: int, generated: bool = False) -> Corrections:
        """Values of `block` whose correction is still to come: rendered corrected now for a generated stream
        (in one call, rather than one plant read each when due), else read again from the plant when due."""
        future = (block.corr_at > now) & (block.corr_at != NEVER)
        if generated and future.any():
            return corrected(self.streams[index], index, block.take(future))
        count = int(future.sum())
        return Corrections(np.full(count, index, np.int64), block.ts[future], block.corr_at[future],
                           np.full(count, None, dtype=object))

    async def _listen(self) -> None:
        """Drain client frames (ignored, as on a real server) and notice the disconnect."""
        with contextlib.suppress(Exception):
            while True:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    break
        self._closed.set()
        self._wake_up()

    def _initial(self, stream: Stream, now: int) -> Block:
        """The current value; the whole group if several values share its timestamp, so positions stay right."""
        last = readers.last_before(self.app.plant, stream.point, now, now)
        if not len(last):
            return readers.no_data(np.array([now], dtype=np.int64))
        t = int(last.ts[0])
        return self.app.plant.block(stream.point, t, t, now)

    @staticmethod
    def _json(stream: Stream, block: Block) -> str:
        return jsonfmt.timed_values(block, stream.point, stream.units)

    def _message(self, changes: dict[int, list[str]], count: int) -> str:
        """One StreamValues per changed stream, in subscription order; `changes` holds comma-joinable pieces
        (`count` values in all), copied once into the message."""
        parts = ['{"Links":{},"Items":[']
        for i in sorted(changes):
            parts += (self._heads[i], ",".join(changes[i]), self._tails[i], ",")
        parts[-1] = "]}"
        self.app.stats.values += count
        return "".join(parts)


async def _deny(send: Send, reply: Reply) -> None:
    content = reply.content()
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(content)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    await send({"type": "websocket.http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": content})
