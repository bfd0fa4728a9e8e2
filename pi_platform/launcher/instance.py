"""The Dagster instance `up` runs on: the project's dagster.yaml, with runs, event logs and schedules in Postgres
when a server is given (`--postgres URL` or PI_DAGSTER_POSTGRES_URL), in SQLite under DAGSTER_HOME otherwise.

Postgres is what lets the webserver, the daemon, code servers and run workers live in different processes or
machines (SQLite is single-host). The URL can hold a password, so dagster.yaml names an environment variable
(`DAGSTER_POSTGRES_URL`) that `up` sets for its children, never the URL itself, and messages show only
host, port and database. The driver is pinned to psycopg2 in the URL: SQLAlchemy 2.1 maps a plain
`postgresql://` to psycopg 3, which dagster-postgres 0.29 does not support (its NOTIFY fails).
"""

from pathlib import Path
from urllib.parse import urlsplit

from pi_platform.errors import ConfigError, PlatformError

POSTGRES_URL_ENV = "DAGSTER_POSTGRES_URL"
_STORAGE = f"""
# Written by `pi-platform up --postgres` (or PI_DAGSTER_POSTGRES_URL): runs, event logs and schedules in Postgres.
storage:
  postgres:
    postgres_url:
      env: {POSTGRES_URL_ENV}
"""


def sqlalchemy_url(url: str) -> str:
    """`url` with the psycopg2 driver named (postgres://, postgresql:// and postgresql+psycopg2:// accepted)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg2"):
        raise ConfigError("the Dagster Postgres URL (--postgres / PI_DAGSTER_POSTGRES_URL) must look like "
                          "postgresql://user:password@host:5432/dbname")
    return f"postgresql+psycopg2://{rest}"


def safe_location(url: str) -> str:
    """host:port/database of `url`, without user or password: what messages may show."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path or '/'}"


def write_instance_yaml(source: Path, home: Path, *, postgres: bool) -> Path:
    """DAGSTER_HOME/dagster.yaml: the project's settings, plus the Postgres storage section when asked."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    target.write_text(source.read_text() + (_STORAGE if postgres else ""))
    return target


def check_postgres(url: str, timeout_s: int = 5) -> None:
    """Connect once, so an unreachable server or a refused login is one line before anything starts."""
    import psycopg2  # the launcher's only use of it; dagster-postgres brings it

    try:
        psycopg2.connect(sqlalchemy_url(url).replace("postgresql+psycopg2://", "postgresql://", 1),
                         connect_timeout=timeout_s).close()
    except psycopg2.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PlatformError(f"cannot use Dagster's Postgres at {safe_location(url)}: {reason}; "
                            "check --postgres / PI_DAGSTER_POSTGRES_URL") from None
