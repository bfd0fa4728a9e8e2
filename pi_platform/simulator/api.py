"""A tiny framework-free router for /piwebapi: handlers are plain functions (Ctx) -> Reply.

Keeping handlers independent of Starlette lets POST /batch run sub-requests in-process through the very
same code path as real requests (PI Web API's own batch does that too: "subrequests are always executed
against the PI Web API instance that received the batch request").
"""

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from pi_platform import webid
from pi_platform.pitime import PITimeError, parse_time, to_us
from pi_platform.simulator import fields
from pi_platform.simulator.plant import NotAStream, ObjectNotFound, Stream

if TYPE_CHECKING:
    from pi_platform.simulator.channels import ChannelHub
    from pi_platform.simulator.faults import FaultState
    from pi_platform.simulator.plant import Plant
    from pi_platform.simulator.config import SimulatorConfig


class ApiError(Exception):
    """Rendered as `{"Errors": [message]}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Reply:
    status: int = 200
    body: "bytes | dict | list | None" = None
    headers: list[tuple[str, str]] = field(default_factory=list)  # repeatable (WWW-Authenticate)
    # Number of time-series values in the body (server statistics only).
    values: int = 0
    # The handler applied selectedFields itself (value lists); otherwise the router filters the body.
    selected: bool = False

    def content(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return orjson.dumps(self.body)


def error_reply(status: int, *messages: str) -> Reply:
    return Reply(status, {"Errors": list(messages)})


def scope_headers(scope: dict) -> dict[str, str]:
    """An ASGI scope's headers as a dict with lower-case names (the last of repeated headers wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def caller_identity(headers: dict[str, str]) -> str:
    """Who the request authenticated as (Basic user name, "bearer" for a token), "" when anonymous."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials).decode("utf-8").partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return "bearer" if scheme.lower() == "bearer" else ""


@dataclass
class Ctx:
    """One request as handlers see it: query parameters (case-insensitive names), plant, config, base URL."""

    plant: "Plant"
    config: "SimulatorConfig"
    faults: "FaultState"
    base: str  # e.g. http://127.0.0.1:8000/piwebapi
    method: str
    path: str  # below /piwebapi, no leading slash
    query: list[tuple[str, str]]
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # The app's dispatch(base, method, path, query_string, body, headers), for batch sub-requests.
    redispatch: "Callable[..., Reply] | None" = None
    # The app's open WebSocket channels (GET channels/instances).
    channels: "ChannelHub | None" = None

    def __post_init__(self) -> None:
        self._params: dict[str, list[str]] = {}
        for key, value in self.query:
            self._params.setdefault(key.lower(), []).append(value)
        self.selection = fields.parse(";".join(self.getall("selectedFields")))

    def getall(self, name: str) -> list[str]:
        return self._params.get(name.lower(), [])

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.getall(name)
        return values[0] if values else default

    def int(self, name: str, default: int) -> int:
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ApiError(400, f"The value '{raw}' is not valid for {name}.") from None

    def bool(self, name: str, default: bool | None) -> bool | None:
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise ApiError(400, f"The value '{raw}' is not valid for {name}.")

    def time_us(self, name: str, default: str) -> int:
        return self.parse_us(name, self.get(name, default) or default)

    def parse_us(self, name: str, raw: str) -> int:
        """A PI time expression given as parameter `name`, in `timeZone`; PI's 400 when unreadable."""
        try:
            return to_us(parse_time(raw, now=self.plant.now(), tz=self.get("timeZone")))
        except (PITimeError, ValueError, KeyError) as exc:
            raise ApiError(400, f"Cannot parse {name} '{raw}': {exc}") from None

    def max_count(self, default: int = 1000) -> int:
        count = self.int("maxCount", default)
        cap = self.config.max_returned_items
        if count > cap:
            raise ApiError(400, f"Parameter maxCount is greater than the maximum allowed ({cap}).")
        if count < 1:
            raise ApiError(400, f"Parameter maxCount must be at least 1 (got {count}).")
        return count

    def start_index(self) -> int:
        index = self.int("startIndex", 0)
        if index < 0:
            raise ApiError(400, f"Parameter startIndex must not be negative (got {index}).")
        return index

    def emit(self, full_web_id: str) -> str:
        """A WebID in the form `webIdType` asks for (Full unless told otherwise)."""
        kind = self.get("webIdType") or "Full"
        if kind.lower() == "full":
            return full_web_id
        try:
            return webid.convert(full_web_id, kind)
        except ValueError:
            raise ApiError(400, f"The value '{kind}' is not valid for webIdType.") from None

    def link(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def lookup(self, web_id: str, *expected: type | str) -> object:
        """Resolve a WebID and check its kind, mapping failures to the statuses PI Web API uses."""
        try:
            _, obj = self.plant.lookup(web_id)
        except webid.InvalidWebId as exc:
            raise ApiError(400, str(exc)) from None
        except ObjectNotFound as exc:
            raise ApiError(404, str(exc)) from None
        if expected and not any(obj == e if isinstance(e, str) else isinstance(obj, e) for e in expected):
            raise ApiError(400, f"The WebID '{web_id}' does not refer to the expected type of object.")
        return obj

    def stream(self, web_id: str) -> Stream:
        try:
            return self.plant.stream(web_id)
        except webid.InvalidWebId as exc:
            raise ApiError(400, str(exc)) from None
        except ObjectNotFound as exc:
            raise ApiError(404, str(exc)) from None
        except NotAStream as exc:
            raise ApiError(409, str(exc)) from None


Handler = Callable[..., Reply]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Routes with fewer `{placeholders}` are tried first, so `elements/search` wins over `elements/{web_id}`
        whatever order modules register in."""
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$", re.IGNORECASE)
        self._routes.append((method, regex, handler))
        self._routes.sort(key=lambda route: route[1].groups)  # stable: registration order within a rank

    def dispatch(self, ctx: Ctx) -> Reply:
        path = ctx.path.strip("/")
        allowed = False
        for method, regex, handler in self._routes:
            match = regex.match(path)
            if match is None:
                continue
            if method != ctx.method:
                allowed = True
                continue
            try:
                reply = handler(ctx, **match.groupdict())
            except ApiError as exc:
                return error_reply(exc.status, exc.message)
            return _apply_selection(ctx, reply)
        if allowed:
            return error_reply(405, f"The requested resource does not support http method '{ctx.method}'.")
        return error_reply(404, f"No resource was found that matches the request URI '{ctx.base}/{path}'.")


def _apply_selection(ctx: Ctx, reply: Reply) -> Reply:
    """selectedFields for every route, in one place: successful JSON bodies the handler did not select itself."""
    if ctx.selection is None or reply.selected or reply.status != 200 or reply.body is None:
        return reply
    if isinstance(reply.body, bytes):
        reply.body = fields.select_body(reply.body, ctx.selection)
    else:
        reply.body = fields.select(reply.body, ctx.selection)  # type: ignore[assignment]
    reply.selected = True
    return reply


def by_path(ctx: "Ctx", kind: str, find: Callable[[str], object | None]) -> object:
    """The object named by the `path` query parameter, or PI's 404 for that kind of object."""
    path = ctx.get("path") or ""
    found = find(path)
    if found is None:
        raise ApiError(404, f"The specified {kind} was not found: '{path}'.")
    return found
