"""Typed streaming errors: what went wrong with a channel or the collector, in one line a user can act on."""

from pi_platform.errors import PlatformError


class StreamingError(PlatformError):
    """Base for collector and channel failures."""


class ChannelError(StreamingError):
    """A channel could not be opened or was closed by the server or the network."""


class ChannelAuthError(ChannelError):
    """The WebSocket upgrade was refused with 401/403: credentials are missing or wrong."""


class ChannelRejected(ChannelError):
    """The upgrade was refused with another 4xx (unknown or malformed WebId in the subscription)."""


class DeadChannelError(ChannelError):
    """The socket stayed open but delivered neither data nor a heartbeat within the watchdog time.

    Pings alone do not count: a PI Web API whose data pipe is stuck still answers pings, and that is
    exactly the silent failure users discover days later.
    """


class CollectorRunning(StreamingError):
    """Another collector already holds the state directory's lock."""
