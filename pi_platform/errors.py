"""Errors a user can act on, and the single place that renders them as one line.

Library layers raise precise typed errors (client, simulator, storage, streaming); the CLI and Dagster
resources show `user_message(exc)` so a wrong URL or password never becomes a traceback wall, and a
secret never appears in the text.
"""


class PlatformError(Exception):
    """Base for errors whose message is already one line saying what is wrong and how to fix it."""


class ConfigError(PlatformError):
    """Malformed or missing configuration (env vars, YAML, CLI flags)."""


def user_message(exc: BaseException) -> str | None:
    """One-line message for errors the user can fix; None for bugs, which should keep their traceback."""
    if isinstance(exc, PlatformError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None
