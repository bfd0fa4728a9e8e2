"""User-fixable errors (bad URL, credentials, unknown tag, unreachable bucket) as one-line Dagster failures.

Dagster would show a wrapped exception with a stack trace; for a `PlatformError` the message already says
what is wrong and how to fix it, so the step fails with exactly that line. Only errors the client marks
`retryable` (PI answering 5xx/429 after the client's own retries, a dropped connection) let an op's RetryPolicy
try again; retrying a wrong password does not help.
"""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import dagster as dg

from pi_platform.errors import PlatformError, user_message

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate an asset or op body (under the Dagster decorator) to turn PlatformError into dg.Failure."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PlatformError as exc:
            raise dg.Failure(
                description=user_message(exc), metadata={"error": type(exc).__name__},
                allow_retries=bool(getattr(exc, "retryable", False)),
            ) from None

    return wrapper
