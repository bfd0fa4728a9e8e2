"""The ASGI application: /piwebapi (HTTP + WebSocket channels) and /admin, with real-server behaviour.

Order of checks on /piwebapi mirrors a real PI Web API behind IIS/Kestrel: rate limit (429), then
authentication (401 + WWW-Authenticate), then CSRF on unsafe methods, then the handler. Faults are
applied around the handler so every client code path (retry, timeout, parse error) can be exercised.
"""

import asyncio
import base64
import hmac
import time
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from pi_platform.simulator import (
    routes_batch, routes_catalog, routes_events, routes_sampled, routes_search, routes_streams, routes_summaries,
    routes_updates,
)
from pi_platform.simulator.routes_admin import build_admin
from pi_platform.simulator.api import Ctx, Reply, Router, error_reply, scope_headers
from pi_platform.simulator.channels import ChannelHub
from pi_platform.simulator.faults import FaultState
from pi_platform.simulator.negotiate import NegotiateAcceptor
from pi_platform.simulator.plant import Plant

if TYPE_CHECKING:
    from pi_platform.simulator.config import SimulatorConfig

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
DENIED = "Authorization has been denied for this request."


def build_router() -> Router:
    router = Router()
    routes_catalog.register(router)
    routes_streams.register(router)
    routes_sampled.register(router)
    routes_search.register(router)
    routes_summaries.register(router)
    routes_updates.register(router)
    routes_events.register(router)
    routes_batch.register(router)
    return router


REQUEST_LOG_SIZE = 100_000


class Stats:
    """Counters the benchmark reads from /admin/stats (the simulator's share of the work)."""

    def __init__(self) -> None:
        self.requests = 0
        self.values = 0
        self.started = time.time()
        # The latest requests (batch sub-requests included), for tests that count what a run read.
        self.log: deque[tuple[str, str, str]] = deque(maxlen=REQUEST_LOG_SIZE)

    def as_dict(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "values_served": self.values,
            "cpu_seconds": time.process_time(),
            "uptime_seconds": time.time() - self.started,
        }


class RateLimiter:
    """Fixed one-second windows per client address (RateLimitMaxRequests / RateLimitDuration)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    def allow(self, client: str, limit: int, window_s: float) -> bool:
        if limit <= 0:
            return True
        now = time.monotonic()
        start, count = self._windows.get(client, (now, 0))
        if now - start >= window_s:
            start, count = now, 0
        self._windows[client] = (start, count + 1)
        return count < limit


class SimulatorApp:
    def __init__(self, plant: Plant, config: "SimulatorConfig", faults: FaultState) -> None:
        self.plant = plant
        self.config = config
        self.faults = faults
        self.router = build_router()
        self.stats = Stats()
        self.limiter = RateLimiter()
        self.channels = ChannelHub(self)
        kerberos = config.keytab is not None and "kerberos" in config.auth_schemes
        self.negotiate = NegotiateAcceptor(config.keytab) if kerberos and config.keytab else None
        self.admin = build_admin(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/admin"):
            await self.admin(scope, receive, send)
        elif path == "/piwebapi" or path.startswith("/piwebapi/"):
            if kind == "websocket":
                await self.channels.handle(scope, receive, send)
            else:
                await self._http(scope, receive, send)
        elif kind == "http":
            await _send(send, error_reply(404, f"No resource at '{path}'; the API lives under /piwebapi."))

    # ---- checks shared with channels ---------------------------------------------------------------------
    def authenticate(self, headers: dict[str, str]) -> tuple[bool, list[tuple[str, str]]]:
        """(ok, WWW-Authenticate headers): with ok, headers for the answer (Kerberos' mutual-auth token);
        without, the challenges of a 401 (every enabled scheme, and Kerberos' error token when it made one)."""
        schemes = self.config.auth_schemes
        if not schemes:
            return True, []
        given = headers.get("authorization", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() == "basic" and "basic" in schemes:
            try:
                user, _, password = base64.b64decode(credentials).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            if hmac.compare_digest(user.encode(), self.config.username.encode()) and hmac.compare_digest(
                password.encode(), self.config.password.encode()
            ):
                return True, []
        if scheme.lower() == "bearer" and "bearer" in schemes:
            if hmac.compare_digest(credentials.strip().encode(), self.config.token.encode()):
                return True, []
        negotiate = "Negotiate"
        if scheme.lower() == "negotiate" and self.negotiate is not None:
            outcome = self.negotiate.accept(credentials)
            if outcome.principal is not None:
                return True, [("www-authenticate", outcome.header)]
            negotiate = outcome.header
        challenges = []
        for name in schemes:
            value = {"basic": f'Basic realm="{self.config.realm}"', "bearer": f'Bearer realm="{self.config.realm}"',
                     "kerberos": negotiate}[name]
            challenges.append(("www-authenticate", value))
        return False, challenges

    def admit(self, scope: Scope, headers: dict[str, str]) -> tuple[Reply | None, list[tuple[str, str]]]:
        """Rate limit and auth for a request or upgrade (`headers`: its scope_headers): (the refusal, or None;
        headers the accepted answer must carry)."""
        client = (scope.get("client") or ("?", 0))[0]
        if not self.limiter.allow(client, self.config.rate_limit, self.config.rate_limit_window_s):
            return _rate_limited(self.faults.faults.retry_after_s), []
        ok, auth_headers = self.authenticate(headers)
        if not ok:
            reply = error_reply(401, DENIED)
            reply.headers = auth_headers
            return reply, []
        return None, auth_headers

    # ---- HTTP ---------------------------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.requests += 1
        headers = scope_headers(scope)
        refused, auth_headers = self.admit(scope, headers)
        if refused is not None:
            await _send(send, refused)
            return
        method = scope["method"].upper()
        if self.config.csrf and method in UNSAFE_METHODS and "x-requested-with" not in headers:
            await _send(
                send,
                error_reply(
                    403,
                    "The request must include the X-Requested-With header (CSRF defense is enabled on this server).",
                ),
            )
            return
        faults = self.faults
        f = faults.faults
        if f.latency_ms > 0:
            await asyncio.sleep(f.latency_ms / 1000)
        if faults.roll(f.stall_rate):
            await asyncio.sleep(f.stall_seconds)
        if faults.roll(f.error_rate):
            status = faults.choice([500, 502, 503])
            await _send(send, error_reply(status, "An error has occurred." if status == 500 else "Service Unavailable"))
            return
        if faults.roll(f.status_429_rate):
            await _send(send, _rate_limited(f.retry_after_s))
            return
        if faults.hits_failing_stream(scope.get("query_string", b"")):
            await _send(send, error_reply(503, "Service Unavailable"))
            return
        body = await _read_body(receive)
        host = headers.get("host") or f"{scope['server'][0]}:{scope['server'][1]}"
        scheme = "https" if scope.get("scheme") == "https" else "http"
        # Handlers are CPU-bound (value generation, JSON); running them off the event loop keeps channel pushes,
        # admin calls and cheap requests flowing while a large read is being built.
        reply = await asyncio.to_thread(
            self.dispatch,
            f"{scheme}://{host}/piwebapi",
            method,
            scope["path"][len("/piwebapi") :],
            scope.get("query_string", b""),
            body,
            headers,
        )
        self.stats.values += reply.values
        reply.headers = [*reply.headers, *auth_headers]
        content = reply.content()
        if reply.status == 200 and faults.roll(f.malformed_json_rate):
            content = content[: max(len(content) // 2, 1)] + b"<!-- malformed -->,}"
        if reply.status == 200 and len(content) > 2 and faults.roll(f.truncated_rate):
            await _send_truncated(send, content)
            return
        await _send(send, reply, content)

    def dispatch(self, base: str, method: str, path: str, query_string: bytes, body: bytes, headers: dict) -> Reply:
        """Run one request through the router; POST batch calls this again for each sub-request."""
        query = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        self.stats.log.append((method, path.lstrip("/"), query_string.decode("latin-1")))
        ctx = Ctx(self.plant, self.config, self.faults, base, method, path.lstrip("/"), query, body, headers)
        ctx.redispatch = self.dispatch
        ctx.channels = self.channels
        return self.router.dispatch(ctx)


def _rate_limited(retry_after_s: int) -> Reply:
    """The 429 of RateLimitMaxRequests, also sent by the status_429_rate fault so both look the same."""
    return Reply(429, {"Errors": ["Rate limit was reached"]}, [("retry-after", str(retry_after_s))])


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _send(send: Send, reply: Reply, content: bytes | None = None) -> None:
    content = reply.content() if content is None else content
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(content)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


class AbortConnection(Exception):
    """Raised after a partial body so uvicorn drops the connection (a truncated response on the wire)."""


async def _send_truncated(send: Send, content: bytes) -> None:
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": content[: len(content) // 2], "more_body": True})
    raise AbortConnection("truncated_rate fault: connection dropped mid-body")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
