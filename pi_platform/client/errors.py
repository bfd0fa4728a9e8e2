"""Typed PI Web API client errors, each rendered as one line: what went wrong and what to do about it.

Callers branch on the type (a Dagster asset retries `ServerError`, fails fast on `AuthError`); users read
the message. Messages name the server by scheme/host/path only: credentials live in headers, never in URLs,
and the config rejects URLs with user info, so no message can carry a secret.
"""

from pi_platform.errors import PlatformError


class PIWebAPIError(PlatformError):
    """Base for everything the client raises; `status` is the HTTP status when there was one."""

    status: int | None = None
    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(" ".join(message.split()))  # always one line, whatever the server sent
        if status is not None:
            self.status = status


class ConnectError(PIWebAPIError):
    """The server could not be reached at all (DNS, refused, reset)."""

    retryable = True


class TLSError(ConnectError):
    """Certificate verification or handshake failed; retrying will not help."""

    retryable = False


class RequestTimeout(PIWebAPIError):
    """No complete answer within timeout_s."""

    retryable = True


class BadRequest(PIWebAPIError):
    """400: malformed WebID, bad parameter, or a limit such as MaxReturnedItemsPerCall exceeded."""

    status = 400


class AuthError(PIWebAPIError):
    """401: missing or rejected credentials. `schemes` lists what WWW-Authenticate offered."""

    status = 401

    def __init__(self, message: str, *, schemes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.schemes = schemes


class Forbidden(PIWebAPIError):
    """403: authenticated, but the identity lacks permission (or the CSRF header was refused)."""

    status = 403


class NotFound(PIWebAPIError):
    """404: unknown object (WebID, path) or endpoint."""

    status = 404


class Conflict(PIWebAPIError):
    """409: the operation is not supported by this object or data reference."""

    status = 409


class RateLimited(PIWebAPIError):
    """429 still returned after all retries."""

    status = 429
    retryable = True


class ServerError(PIWebAPIError):
    """5xx still returned after all retries."""

    retryable = True


class ProtocolError(PIWebAPIError):
    """The body is not the JSON PI Web API sends: malformed, truncated, or of the wrong shape.

    Retryable: truncated or garbled bodies almost always come from a proxy or a connection cut mid-stream,
    and a repeated GET is harmless. If the server really sends bad JSON, retries are bounded by max_retries.
    """

    retryable = True


class WebExceptionError(PIWebAPIError):
    """A 200 whose body carries a non-null WebException: the server failed while streaming the answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retryable = status is None or status >= 500 or status == 429


class TimeRangeError(PIWebAPIError):
    """A start or end that is not a PI time expression."""


class PagingError(PIWebAPIError):
    """Recorded values cannot be paged without losing data (more values at one timestamp than the server cap)."""
