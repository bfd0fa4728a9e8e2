"""Typed decoding of `streamsets/recorded` pages: the fast path of every batch extraction.

Decoding into dicts (orjson) costs ~1.1 µs a value, more than building all the Arrow columns after it: each
value is a dict of seven keys, and each dict is tracked by Python's cyclic GC. msgspec decodes the same JSON
against declared types into slotted, untracked structs in ~0.3 µs a value, checking the types as it goes, so
the column builder can trust them.

Only clean pages take this path: a body with `Errors` or a `WebException` at any level (declared as fields that
may only be null, so the decoder itself refuses them, at no cost; a substring search of the body cost 0.16 µs a
value), or whose values do not fit the declared shapes (a boolean `Value`, a state without `Name`, a `null`
timestamp, a quoted flag...), decodes with orjson into dicts instead, where every odd item is kept as a reject
with its reason, and the transport raises PI's errors.
"""

from typing import Any

import msgspec

from pi_platform.client.transport import collect_now_and_then, load_json


class DigitalState(msgspec.Struct, gc=False):
    """A `Value` that is a digital or system state."""

    Name: str
    Value: int
    IsSystem: bool = False


class TimedValue(msgspec.Struct, gc=False):
    """One recorded value; the flag defaults are what PI means when a field is left out."""

    Timestamp: str
    Value: float | str | DigitalState | None = None
    Good: bool = True
    Questionable: bool = False
    Substituted: bool = False
    Annotated: bool = False
    Errors: None = None  # per-value errors: the generic path makes them rejects


class StreamValues(msgspec.Struct, gc=False):
    """One stream's answer inside a streamsets response."""

    WebId: str
    Items: list[TimedValue]
    Name: str = ""
    UnitsAbbreviation: str | None | msgspec.UnsetType = msgspec.UNSET  # unset: keep the units known before
    WebException: None = None  # a stream that failed mid-read: the generic path re-reads it
    Errors: None = None  # a stream PI could not read: the generic path rejects it


class RecordedPage(msgspec.Struct, gc=False):
    Items: list[StreamValues]
    WebException: None = None  # the transport raises it, from the generic path
    Errors: None = None


class ChannelValue(TimedValue, gc=False):
    """A value in a channel message: numbers stay int or float as written (so Arrow refuses exactly what it
    refuses from orjson's), and channels carry per-value units (null or missing: the stream's apply)."""

    Value: int | float | str | DigitalState | None = None
    UnitsAbbreviation: str | None = None


class ChannelStream(msgspec.Struct, gc=False):
    """One stream's new values in a channel message; `Errors`/`WebException` send it down the generic path."""

    WebId: str
    Items: list[ChannelValue]
    Name: str = ""
    UnitsAbbreviation: str | None = None
    WebException: None = None
    Errors: None = None


class ChannelMessage(msgspec.Struct, gc=False):
    """A clean channel message (`streamsets/end` shape with `Items` lists): `streaming.messages`' fast path."""

    Items: list[ChannelStream]
    WebException: None = None
    Errors: None = None


_DECODER = msgspec.json.Decoder(RecordedPage)


def decode_recorded(content: bytes) -> RecordedPage | Any:
    """A RecordedPage when the body is clean, else orjson's dicts (whose errors the transport reports)."""
    try:
        page = _DECODER.decode(content)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return load_json(content)  # an odd shape, errors, or malformed JSON: kept (or reported) precisely there
    collect_now_and_then(len(content))
    return page
