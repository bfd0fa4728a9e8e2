"""HTTP layer: one place for auth, TLS, timeouts, retries, concurrency and rate limits, JSON and PI errors.

Everything above this module deals in parsed JSON and typed errors. Retry policy: connection failures,
timeouts, 5xx, 429 (honouring Retry-After), malformed or truncated bodies and 5xx WebExceptions are
retried with full-jitter exponential backoff; other 4xx never are, because repeating a bad WebID or a
rejected password only adds load (and may lock an account).
"""

import asyncio
import gc
import logging
import socket
import ssl
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx
import orjson

from pi_platform.client import errors
from pi_platform.client.auth import build_auth
from pi_platform.client.config import PIWebAPIConfig
from pi_platform.client.negotiate import offered_schemes
from pi_platform.client.throttle import TokenBucket, backoff_delay, parse_retry_after

log = logging.getLogger("pi_platform.client")

# httpcore reads a response body 64 KiB at a time, each read a trip through h11, anyio and asyncio; a recorded
# page is ~9 MB. 1 MiB reads cut the client's CPU to receive a value from ~0.6 to ~0.4 µs (bench: 300 tags' day,
# same pages, client process CPU only). A class attribute httpcore reads per call: raising it is all it takes.
httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = max(httpcore.AsyncHTTP11Connection.READ_NUM_BYTES, 1 << 20)


@dataclass
class TransportStats:
    """Counters tests and benchmarks read to prove retry behaviour without timing anything."""

    attempts: int = 0
    retries: Counter = field(default_factory=Counter)  # reason -> count
    retry_delays: deque = field(default_factory=lambda: deque(maxlen=1000))  # (reason, delay_s, retry_after_s)
    bytes_received: int = 0


class _Retry(Exception):
    """Internal: a retryable failure carrying the typed error to raise if attempts run out."""

    def __init__(self, error: errors.PIWebAPIError, reason: str, retry_after: float | None = None) -> None:
        self.error, self.reason, self.retry_after = error, reason, retry_after


class Transport:
    """An httpx.AsyncClient plus the policies a production PI server deserves. Use as `async with`."""

    def __init__(self, config: PIWebAPIConfig) -> None:
        self.config = config
        self.stats = TransportStats()
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        rate = config.max_requests_per_second
        self._bucket = TokenBucket(rate) if rate else None
        self._client = httpx.AsyncClient(
            base_url=config.url + "/",
            auth=build_auth(config),
            verify=_verify(config),
            timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 15.0)),
            # Idle connections are dropped before common 5 s server keep-alive timeouts (uvicorn, many proxies),
            # so a request never races the server closing the socket it was about to reuse.
            limits=httpx.Limits(max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency,
                                keepalive_expiry=4.0),
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )

    async def __aenter__(self) -> "Transport":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: Any = None, *, decode: Callable[[bytes], Any] | None = None) -> Any:
        return await self.request("GET", path, params=params, decode=decode)

    async def post(self, path: str, body: Any, params: Any = None) -> Any:
        return await self.request("POST", path, params=params, body=body)

    async def request(self, method: str, path: str, *, params: Any = None, body: Any = None,
                      decode: Callable[[bytes], Any] | None = None) -> Any:
        """Send with retries; return the parsed JSON body (None for an empty body).

        `decode` replaces the generic parse for endpoints with a typed fast path (it must raise
        orjson.JSONDecodeError on malformed JSON, so a truncated body is still retried)."""
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else {}
        if method != "GET":
            headers["X-Requested-With"] = "XMLHttpRequest"  # PI's CSRF defence rejects writes without it
        attempt = 0
        while True:
            try:
                return await self._attempt(method, path, params, content, headers, decode or load_json)
            except _Retry as retry:
                if attempt >= self.config.max_retries:
                    raise retry.error from None
                delay = backoff_delay(attempt, self.config.backoff_base_s, self.config.backoff_max_s, retry.retry_after)
                self.stats.retries[retry.reason] += 1
                self.stats.retry_delays.append((retry.reason, delay, retry.retry_after))
                log.warning("%s %s: %s; retry %d/%d in %.2fs", method, self._where(path), retry.reason,
                            attempt + 1, self.config.max_retries, delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def _attempt(self, method: str, path: str, params: Any, content: bytes | None, headers: dict,
                       decode: Callable[[bytes], Any]) -> Any:
        async with self._semaphore:
            if self._bucket is not None:
                await self._bucket.acquire()
            self.stats.attempts += 1
            try:
                response = await self._client.request(method, path, params=params, content=content, headers=headers)
            except httpx.TimeoutException:
                raise _Retry(errors.RequestTimeout(
                    f"{self._where(path)} did not answer within {self.config.timeout_s:g}s; "
                    "raise timeout_s or lower max_concurrency / window_s if the server is overloaded"), "timeout") from None
            except httpx.ConnectError as exc:
                error = _connect_error(exc, self.config)
                if not error.retryable:
                    raise error from None
                raise _Retry(error, "connect") from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                raise _Retry(errors.ProtocolError(
                    f"{self._where(path)}: connection broke mid-response ({type(exc).__name__}); "
                    "check proxies/load balancers between you and PI Web API"), "broken response") from None
        self.stats.bytes_received += len(response.content)
        return self._interpret(response, path, decode)

    def _interpret(self, response: httpx.Response, path: str, decode: Callable[[bytes], Any]) -> Any:
        status = response.status_code
        where = self._where(path)
        if status >= 400:
            raise _status_error(status, where, response)
        if status >= 300:  # PI Web API never redirects API calls: this is a proxy, SSO portal or wrong path
            target = response.headers.get("location", "?").split("?", 1)[0]
            raise errors.PIWebAPIError(f"{where} redirected ({status}) to {target}; use the PI Web API URL itself "
                                       "(often https://host/piwebapi)", status=status)
        if not response.content:
            return None
        try:
            data = decode(response.content)
        except orjson.JSONDecodeError as exc:
            raise _Retry(errors.ProtocolError(
                f"{where} returned malformed or truncated JSON ({exc.msg} at byte {exc.pos} of "
                f"{len(response.content)}); a proxy may be cutting responses"), "malformed JSON") from None
        if type(data) is dict:
            web_exception = data.get("WebException")
            if web_exception:
                error = web_exception_error(where, "its answer", web_exception)
                if error.retryable:
                    raise _Retry(error, f"WebException {error.status}")
                raise error
        return data

    def _where(self, path: str) -> str:
        return f"PI Web API {self.config.url}/{path.lstrip('/')}"


_FULL_GC_EVERY_BYTES = 64 << 20
_parsed_since_gc = 0


def load_json(content: bytes) -> Any:
    """orjson.loads with Python's cyclic GC paused: a recorded page is ~100k dicts, each allocation counting
    toward collections that walk every live object, yet parsed JSON holds no cycle (-15 % client CPU, 10k tags).
    A caller that disabled GC keeps it disabled."""
    if not gc.isenabled():
        return orjson.loads(content)
    gc.disable()
    try:
        return orjson.loads(content)
    finally:
        gc.enable()
        collect_now_and_then(len(content))


def collect_now_and_then(parsed_bytes: int) -> None:
    """One full collection per 64 MB of JSON parsed (~500k values), for every decoder (a long read walks only what
    it made: `long_lived_heap_frozen`).

    A decoder that allocates little the GC tracks (load_json pauses it; msgspec structs are untracked) starves
    the collector's own schedule, so cyclic garbage made elsewhere (pandas frames in validation, asyncio)
    piles up with its buffers: measured +650 MB over 10,000 tags with the pause, +450 MB with typed pages."""
    global _parsed_since_gc
    _parsed_since_gc += parsed_bytes
    if _parsed_since_gc >= _FULL_GC_EVERY_BYTES:
        _parsed_since_gc = 0
        gc.collect()


@contextmanager
def long_lived_heap_frozen() -> Iterator[None]:
    """Leave what is alive now out of every collection until the block ends (`gc.freeze`), for a long read.

    Each of `collect_now_and_then`'s full collections walked the whole heap, imports included: ~75 ms each, 0.14
    µs a value over a day of 3,000 tags; frozen, the same collections took 5-13 ms. Scoped, not for the process'
    life: an object frozen here that becomes cyclic garbage meanwhile is only reclaimed after the block, so the
    cost is bounded by the heap the read started with. Concurrent blocks in one process merely end the saving
    early (the first to finish unfreezes)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _verify(config: PIWebAPIConfig) -> ssl.SSLContext | bool:
    if not config.verify_tls:
        return False
    if config.ca_bundle:
        return ssl.create_default_context(cafile=config.ca_bundle)
    return True


def error_text(body: Any) -> str:
    """The text of a PI `{"Errors": [...]}` body (strings, or PropertyError objects with Message lists)."""
    if isinstance(body, dict):
        items = body.get("Errors") or []
        parts = []
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, dict):
                message = item.get("Message")
                parts.extend(message if isinstance(message, list) else [str(message)])
            else:
                parts.append(str(item))
        if parts:
            return "; ".join(str(p) for p in parts)
    return ""


def web_exception_error(where: str, what: str, web_exception: object) -> errors.WebExceptionError:
    """The error for a 200 whose body (or one stream of it, `what`) carries PI's WebException."""
    code = web_exception.get("StatusCode") if isinstance(web_exception, dict) else None
    return errors.WebExceptionError(
        f"{where} failed while streaming {what} (WebException status {code}): {error_text(web_exception)}", status=code)


def _body_text(response: httpx.Response) -> str:
    try:
        text = error_text(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        text = response.text.strip()
    return text[:300]


def _status_error(status: int, where: str, response: httpx.Response) -> Exception:
    detail = _body_text(response)
    said = f": {detail}" if detail else ""
    if status == 400:
        return errors.BadRequest(f"{where} rejected the request (400){said}; check WebIDs and parameters")
    if status == 401:
        schemes = offered_schemes(response.headers.get_list("www-authenticate"))
        offered = ", ".join(schemes) if schemes else "none advertised"
        return errors.AuthError(
            f"{where} refused the credentials (401); server offers: {offered}; "
            "set auth/username/password or token (PI_WEBAPI_AUTH, PI_WEBAPI_USERNAME, ...) to match", schemes=schemes)
    if status == 403:
        return errors.Forbidden(f"{where} denied access (403){said}; ask the PI admin to grant this identity read access")
    if status == 404:
        return errors.NotFound(f"{where} not found (404){said}; check the WebID/path exists on this server")
    if status == 409:
        return errors.Conflict(f"{where} cannot do this for the object (409){said}")
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return _Retry(errors.RateLimited(
            f"{where} kept answering 429 (rate limit){said}; lower max_requests_per_second"), "429", retry_after)
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return _Retry(errors.ServerError(
            f"{where} kept failing with {status}{said}; check the PI Web API server and its PI/AF back ends",
            status=status), str(status), retry_after)
    return errors.PIWebAPIError(f"{where} answered {status}{said}", status=status)


def _connect_error(exc: httpx.ConnectError, config: PIWebAPIConfig) -> errors.PIWebAPIError:
    """Tell DNS failures, refused connections and TLS problems apart: each has a different fix."""
    cause: BaseException | None = exc
    seen = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return errors.TLSError(
                f"TLS certificate of {config.host} not trusted ({cause.verify_message}); set ca_bundle / "
                "PI_WEBAPI_CA_BUNDLE to your CA's PEM file (verify_tls=false only for testing)")
        if isinstance(cause, ssl.SSLError):
            return errors.TLSError(
                f"TLS handshake with {config.host} failed ({cause.reason or cause}); check the port, and use http:// "
                "if the server does not speak TLS there")
        if isinstance(cause, socket.gaierror):
            return _dns_error(config)
        if isinstance(cause, ConnectionRefusedError):
            return errors.ConnectError(
                f"connection refused by {config.host}: nothing listens at {config.url}; check the port and that "
                "PI Web API is running")
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return _dns_error(config)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return errors.TLSError(
            f"TLS certificate of {config.host} not trusted; set ca_bundle / PI_WEBAPI_CA_BUNDLE to your CA's PEM file")
    return errors.ConnectError(f"cannot connect to {config.url} ({text or type(exc).__name__}); check URL and network")


def _dns_error(config: PIWebAPIConfig) -> errors.ConnectError:
    error = errors.ConnectError(f"cannot resolve host {config.host!r} (DNS); check the host name in the URL {config.url}")
    error.retryable = False  # a misspelt host does not fix itself; retrying only delays the message
    return error
