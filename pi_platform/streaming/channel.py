"""PI Web API channels as they really are: push-only WebSockets whose subscription is the URL.

Layering (like websockets' own): `channel_urls` turns a WebId list into URLs that each stay within a
length budget; `ChannelSocket` is one connection attempt that yields raw messages and raises typed
errors (a dead-channel watchdog included); `ChannelConnection` keeps one URL alive forever with
exponential backoff and jitter, and tells its owner when it (re)opens so the owner can backfill the gap.
There is no subscribe message in this protocol: changing a subscription means opening another URL.
"""

import asyncio
import base64
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from pi_platform import gss
from pi_platform.client import negotiate
from pi_platform.client.auth import negotiator, redact_credentials
from pi_platform.client.config import PIWebAPIConfig
from pi_platform.streaming.errors import ChannelAuthError, ChannelError, ChannelRejected, DeadChannelError

log = logging.getLogger(__name__)


redact_credentials("websockets.client")  # it logs every handshake header at DEBUG, Authorization included


@dataclass(frozen=True)
class ChannelOptions:
    """How channels are opened and watched; defaults suit a production PI Web API."""

    include_initial_values: bool = False
    heartbeat_rate: int = 5  # polls without data before the server sends an empty message; <= 0 disables
    dead_channel_timeout_s: float = 60.0  # no data and no heartbeat for this long: the channel is dead
    max_url_length: int = 4096  # conservative: proxies and IIS reject long query strings
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    # Refused credentials do not fix themselves quickly: retry slowly (a password reset or an unlocked
    # account then heals the collector without a restart), each attempt logged and reported as ERROR.
    auth_retry_s: float = 60.0
    open_timeout_s: float = 15.0
    ping_interval_s: float | None = 20.0
    max_message_bytes: int = 64 << 20


def ws_base(url: str) -> str:
    """The channel base for a REST base URL: same host and path, `ws`/`wss` scheme."""
    parts = urlsplit(url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _query_tail(options: ChannelOptions) -> str:
    tail = f"&includeInitialValues={'true' if options.include_initial_values else 'false'}"
    if options.heartbeat_rate > 0:
        tail += f"&heartbeatRate={options.heartbeat_rate}"
    return tail


def channel_urls(base_url: str, web_ids: Sequence[str], options: ChannelOptions) -> list[tuple[list[str], str]]:
    """Split `web_ids` into `streamsets/channel` URLs no longer than `options.max_url_length`.

    Returns (web_ids, url) pairs preserving order. One WebId that alone exceeds the budget still gets
    its own URL (a longer URL beats silently not subscribing it).
    """
    prefix = f"{ws_base(base_url)}/streamsets/channel?"
    tail = _query_tail(options)
    groups: list[tuple[list[str], str]] = []
    current: list[str] = []
    params: list[str] = []
    length = len(prefix) + len(tail)
    for web_id in web_ids:
        param = "webId=" + quote(web_id, safe="")
        added = len(param) + (1 if params else 0)
        if params and length + added > options.max_url_length:
            groups.append((current, prefix + "&".join(params) + tail))
            current, params, length = [], [], len(prefix) + len(tail)
            added = len(param)
        current.append(web_id)
        params.append(param)
        length += added
    if params:
        groups.append((current, prefix + "&".join(params) + tail))
    return groups


class NegotiateHandshake:
    """Kerberos for the upgrade: a fresh `Negotiate` token per (re)connect, so a ticket renewed meanwhile is used
    and an expired one is a logged `ChannelAuthError` retried every `auth_retry_s`, never the collector's end."""

    def __init__(self, negotiator: negotiate.Negotiator) -> None:
        self._negotiator = negotiator
        self._initiator: gss.Initiator | None = None

    def __call__(self) -> dict[str, str]:
        try:
            self._initiator, header = self._negotiator.start()
        except negotiate.KerberosError as exc:
            raise ChannelAuthError(str(exc)) from None
        return {"Authorization": header}

    def refused(self, challenges: list[str], where: str) -> ChannelAuthError:
        assert self._initiator is not None  # a refusal answers a token we made
        return ChannelAuthError(str(self._negotiator.refused(self._initiator, challenges, where)))

    def opened(self, challenges: list[str], where: str) -> None:
        assert self._initiator is not None
        try:
            self._negotiator.finish(self._initiator, challenges, where)
        except negotiate.KerberosError as exc:
            raise ChannelAuthError(str(exc)) from None


# Fixed headers, or a function giving them anew for every connection attempt (Kerberos tokens are single-use).
HandshakeHeaders = Mapping[str, str] | Callable[[], Mapping[str, str]]


def handshake_headers(config: PIWebAPIConfig) -> HandshakeHeaders:
    """Credentials for the upgrade request (an ordinary authenticated GET)."""
    if config.auth == "basic" and config.username is not None and config.password is not None:
        token = base64.b64encode(f"{config.username}:{config.password.get_secret_value()}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if config.auth == "bearer" and config.token is not None:
        return {"Authorization": f"Bearer {config.token.get_secret_value()}"}
    if config.auth == "kerberos":
        return NegotiateHandshake(negotiator(config))
    return {}


def ssl_context(config: PIWebAPIConfig) -> ssl.SSLContext | None:
    if not config.url.startswith("https"):
        return None
    context = ssl.create_default_context(cafile=config.ca_bundle) if config.ca_bundle else ssl.create_default_context()
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def is_heartbeat(payload: bytes) -> bool:
    """An empty message (`{"Links":{},"Items":[]}`): proof of life, not data."""
    return len(payload) < 96 and b'"Items":[]' in payload.replace(b" ", b"")


class ChannelSocket:
    """One WebSocket attempt: open, then yield raw messages until it closes or the watchdog fires."""

    def __init__(self, url: str, options: ChannelOptions, headers: HandshakeHeaders,
                 ssl: ssl.SSLContext | None) -> None:
        self.url = url
        self.options = options
        self._headers = headers
        self._ssl = ssl

    async def messages(self, on_open: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[bytes]:
        """Raw message bytes, heartbeats included (the caller decides what they mean).

        The watchdog times `recv()` only: while the consumer is busy (back-pressure) the clock does not
        run, so slow storage never looks like a dead channel.
        """
        auth = self._headers if isinstance(self._headers, NegotiateHandshake) else None
        # A GSS call may ask the KDC for a service ticket: keep that network round trip off the event loop.
        headers = await asyncio.to_thread(self._headers) if callable(self._headers) else self._headers
        try:
            connection = await websockets.connect(
                self.url,
                additional_headers=headers,
                ssl=self._ssl,
                open_timeout=self.options.open_timeout_s,
                ping_interval=self.options.ping_interval_s,
                ping_timeout=self.options.ping_interval_s,
                max_size=self.options.max_message_bytes,
                max_queue=16,
                close_timeout=2,
            )
        except InvalidStatus as exc:
            if auth is not None and exc.response.status_code == 401:
                where = f"channel to {_host(self.url)}"
                raise auth.refused(exc.response.headers.get_all("WWW-Authenticate"), where) from None
            raise _rejected(exc.response.status_code, self.url) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ChannelError(f"cannot open channel to {_host(self.url)}: {exc or type(exc).__name__}") from None
        dead = False
        try:
            if auth is not None and connection.response is not None:
                auth.opened(connection.response.headers.get_all("WWW-Authenticate"), f"channel to {_host(self.url)}")
            if on_open is not None:
                await on_open()
            while True:
                # Not asyncio.wait_for: before Python 3.12 it returns the message instead of raising when the task
                # is cancelled just as one arrives, and the connection then outlives its close (the collector's
                # stop waited for it forever).
                recv = asyncio.ensure_future(connection.recv(decode=False))
                try:
                    done, _ = await asyncio.wait([recv], timeout=self.options.dead_channel_timeout_s)
                finally:
                    if not recv.done():
                        recv.cancel()  # recv() is cancellation-safe: no message is half-consumed
                if not done:
                    dead = True
                    raise DeadChannelError(
                        f"channel to {_host(self.url)} sent no data or heartbeat for "
                        f"{self.options.dead_channel_timeout_s:g}s; reconnecting"
                    )
                try:
                    message = recv.result()
                except ConnectionClosed as exc:
                    raise ChannelError(f"channel to {_host(self.url)} closed (code {exc.code})") from None
                yield message if isinstance(message, bytes) else message.encode()
        finally:
            if dead:  # a silent peer will not answer a closing handshake either: do not wait for one
                connection.transport.abort()
            else:
                await connection.close()


def _rejected(status: int, url: str) -> ChannelError:
    if status == 401:
        return ChannelAuthError("PI Web API refused the credentials (401): check PI_WEBAPI_USERNAME/PI_WEBAPI_PASSWORD "
                                "(or PI_WEBAPI_TOKEN) and PI_WEBAPI_AUTH")
    if status == 403:
        return ChannelAuthError("PI Web API denied access (403): ask the PI admin to grant this identity read access "
                                "to the subscribed points")
    if 400 <= status < 500 and status != 429:
        return ChannelRejected(f"PI Web API refused the channel with {status}: a subscribed WebId is unknown, deleted "
                               "or malformed (the collector probes which one and isolates it)")
    return ChannelError(f"PI Web API answered the channel upgrade with {status}")


def _host(url: str) -> str:
    return urlsplit(url).netloc


@dataclass
class ConnectionStats:
    """What `pi-platform stream --status` shows per connection."""

    name: str
    web_ids: int
    state: str = "connecting"
    attempts: int = 0
    reconnects: int = 0
    dead_channels: int = 0
    messages: int = 0
    heartbeats: int = 0
    connected_since: float | None = None
    last_message_at: float | None = None
    last_error: str | None = None
    last_error_type: str | None = None
    errors: dict[str, int] = field(default_factory=dict)


class ChannelConnection:
    """Keeps one channel URL open for as long as the collector wants it.

    Every (re)open calls `on_open(source)` before the first message is read so the owner can backfill
    the gap since its last commit; `source` is unique per attempt, which lets the owner tell duplicate
    deliveries (overlapping sockets) from values PI really holds twice.
    """

    def __init__(
        self,
        name: str,
        web_ids: list[str],
        url: str,
        options: ChannelOptions,
        headers: HandshakeHeaders,
        ssl: ssl.SSLContext | None,
        on_message: Callable[[str, bytes], Awaitable[None]],
        on_open: Callable[["ChannelConnection", str], Awaitable[None]],
        on_error: Callable[["ChannelConnection", ChannelError], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.web_ids = web_ids
        self.url = url
        self.options = options
        self._socket = ChannelSocket(url, options, headers, ssl)
        self._on_message = on_message
        self._on_open = on_open
        self._on_error = on_error
        self.stats = ConnectionStats(name=name, web_ids=len(web_ids))
        self.opened = asyncio.Event()

    async def run(self) -> None:
        delay = self.options.backoff_initial_s
        while True:
            self.stats.attempts += 1
            source = f"{self.name}#{self.stats.attempts}"
            try:
                async for payload in self._socket.messages(lambda: self._opened(source)):
                    now = time.time()
                    self.stats.last_message_at = now
                    if is_heartbeat(payload):
                        self.stats.heartbeats += 1
                        continue
                    self.stats.messages += 1
                    await self._on_message(source, payload)
                    delay = self.options.backoff_initial_s
            except ChannelError as exc:
                self._failed(exc)
                if isinstance(exc, ChannelAuthError):
                    delay = max(delay, self.options.auth_retry_s)
                # Full jitter: thousands of collectors reconnecting after a PI restart must not stampede it.
                wait = random.uniform(0.5, 1.0) * delay
                log.log(logging.ERROR if isinstance(exc, ChannelAuthError) else logging.WARNING,
                        "channel %s (%d streams): %s; retry %d in %.1fs", self.name, len(self.web_ids), exc,
                        self.stats.attempts, wait)
                if self._on_error is not None:
                    await self._on_error(self, exc)
            else:
                wait = random.uniform(0.5, 1.0) * delay
            self.stats.state = "backoff"
            self.stats.connected_since = None
            self.stats.reconnects += 1
            await asyncio.sleep(wait)
            delay = min(delay * 2, max(self.options.backoff_max_s, delay))

    async def _opened(self, source: str) -> None:
        self.stats.state = "open"
        self.stats.connected_since = time.time()
        self.stats.last_message_at = self.stats.connected_since
        await self._on_open(self, source)
        self.opened.set()

    def _failed(self, exc: ChannelError) -> None:
        kind = type(exc).__name__
        self.stats.last_error = str(exc)
        self.stats.last_error_type = kind
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
        if isinstance(exc, DeadChannelError):
            self.stats.dead_channels += 1
