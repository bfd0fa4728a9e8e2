"""The one place the platform's `PI_*` environment is read, with every default written exactly once.

The CLI commands, the launcher, the Dagster resources and the streaming collector all ask this module, so a
setting cannot mean one thing to a Dagster run and another to the collector it starts (the collector once
ignored `PI_DELTA_STORAGE_OPTIONS` because it read the environment itself). Values are read when asked, not
at import, so tests and child processes see the environment they were given.

It sits with the ground contracts (it imports nothing but `errors`): the simulator takes its default address
from here too, and the client builds its connection from it (`PIWebAPIConfig.from_settings`).

Default paths live under the project home, not the current directory, so `pi-platform stream --status`
finds the collector from anywhere: `PI_PLATFORM_HOME` if set, else the checkout this package runs from
(the folder holding `workspace.yaml`), else `~/.pi_platform`.

| variable | meaning | default |
|---|---|---|
| `PI_WEBAPI_URL`, `PI_WEBAPI_AUTH`, `PI_WEBAPI_USERNAME`, `PI_WEBAPI_PASSWORD`, `PI_WEBAPI_TOKEN`, `PI_WEBAPI_VERIFY_TLS`, `PI_WEBAPI_CA_BUNDLE`, `PI_WEBAPI_<FIELD>` | the PI Web API connection (any `PIWebAPIConfig` field) | the embedded simulator, anonymous |
| `PI_WEBAPI_KEYTAB`, `PI_WEBAPI_PRINCIPAL`, `PI_WEBAPI_SPN`, `PI_WEBAPI_MUTUAL_AUTH`, `PI_WEBAPI_DELEGATE` | with `PI_WEBAPI_AUTH=kerberos`: a service account's keytab and principal (else the ticket cache, `KRB5CCNAME`), the server's SPN, mutual authentication (`required`/`optional`/`disabled`), ticket delegation (`PIWebAPIConfig` fields) | ticket cache, `HTTP/<URL host>`, optional, false |
| `PI_AF_DATABASE` | AF database the batch assets read | all |
| `PI_DELTA_ROOT`, `PI_DELTA_STORAGE_OPTIONS` (JSON) | the lake: a directory or `s3://bucket/prefix`, and delta-rs storage options | `<home>/.pi_platform/lake` |
| `PI_STREAM_STATE_DIR` | collector WAL, status, subscription, gap ledger | `<home>/.pi_platform/stream` |
| `PI_STREAM_MODE`, `PI_STREAM_NAME_FILTER`, `PI_STREAM_WEB_IDS`, `PI_STREAM_SENSOR_DEFAULT` | who runs the collector, what it subscribes, whether its sensor starts running | local, none, none, stopped |
| `PI_PLATFORM_ALERT_WEBHOOK_URL` | where ERROR alerts are POSTed | none |
| `PI_MQTT_URL`, `PI_MQTT_TOPIC_PREFIX`, `PI_MQTT_TOPIC_BY`, `PI_MQTT_STATE_DIR` | MQTT fan-out of committed stream values (`pi-platform publish`; `up` runs it when the URL is set): broker, topic prefix, topic per tag name or AF path, checkpoint directory | none (off), `pi/values`, tag, `<home>/.pi_platform/mqtt` |
| `PI_VIEWER_PORT`, `PI_VIEWER_URL` | the web viewer's port, and the address Dagster's asset pages link to (set it when the viewer is reached through another host or a proxy) | 3100, `http://127.0.0.1:<port>` |
| `PI_PLATFORM_REQUIRE_OS_PACKAGES` | tests needing an OS package (chromium...) fail instead of skipping where it is missing; `.ci/run` sets it | unset (skip) |
| `PI_PARTITIONS_START`, `PI_DAILY_LAG_MINUTES`, `PI_TODAY_REFRESH_CRON`, `PI_MAINTENANCE_CRON`, `PI_RECORDED_MAX_LAG_MINUTES` | batch calendar | 2024-01-01, 60, `*/15 * * * *`, `30 3 * * *`, 1560 |
| `PI_SUMMARY_INTERVAL`, `PI_SUMMARY_CALCULATION_BASIS`, `PI_INTERPOLATION_INTERVAL` | `recorded_summaries` interval and PI calculationBasis, `interpolated_values` interval (each also run config) | 1h, TimeWeighted, 1h |
| `PI_RECORDED_SHARDS` | tag shards a `recorded_values` run splits into: separate steps the executor spreads over processes or pods | 1 |
| `PI_RECORDED_PROCESSES` | processes each `recorded_values` shard step uses: N-1 reader processes read PI while the step validates and stages | 1 |
| `PI_STREAM_SHARDS` | streaming collectors the subscription is split over by a hash of each tag's WebID (`pi-platform stream --shard K/N`; the sensor and `up` run all N) | 1 |
| `PI_DAGSTER_POSTGRES_URL` | `pi-platform up` keeps Dagster's runs, events and schedules in this Postgres (`postgresql://user:password@host:5432/db`) instead of SQLite | unset (SQLite) |
| `PI_PARTITION_TIMEZONE` | IANA zone of the plant's day: daily partitions, day columns and schedules follow it (timestamps stay UTC) | UTC |
| `PI_HEALING_INTERVAL_SECONDS`, `PI_HEALING_LOOKBACK_DAYS` | late-edit healing: how often the sensor polls PI's stream updates, and how many days back it watches | 60, 7 |
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pi_platform.errors import ConfigError

SIMULATOR_HOST = "127.0.0.1"
SIMULATOR_PORT = 8765
DEFAULT_PI_WEBAPI_URL = f"http://{SIMULATOR_HOST}:{SIMULATOR_PORT}/piwebapi"
_CHECKOUT = Path(__file__).resolve().parent.parent


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _get(name: str, default: str | None = None, environ: Mapping[str, str] | None = None) -> Any:
    """An environment variable; empty counts as unset (a blank line in an .env file must not mean "")."""
    value = _env(environ).get(name)
    return value if value else default


def project_home(environ: Mapping[str, str] | None = None) -> Path:
    explicit = _get("PI_PLATFORM_HOME", environ=environ)
    if explicit:
        return Path(explicit).expanduser().resolve()
    if (_CHECKOUT / "workspace.yaml").is_file():
        return _CHECKOUT
    return Path.home() / ".pi_platform"


def _under_home(name: str, environ: Mapping[str, str] | None) -> str:
    return str(project_home(environ) / ".pi_platform" / name)


# ---------------------------------------------------------------------------------------------- PI Web API
def pi_url(environ: Mapping[str, str] | None = None) -> str:
    return _get("PI_WEBAPI_URL", DEFAULT_PI_WEBAPI_URL, environ)


def pi_url_is_set(environ: Mapping[str, str] | None = None) -> bool:
    """Whether PI_WEBAPI_URL names a server: if not, `pi-platform up` starts the embedded simulator."""
    return _get("PI_WEBAPI_URL", environ=environ) is not None


def af_database(environ: Mapping[str, str] | None = None) -> str | None:
    return _get("PI_AF_DATABASE", environ=environ)


# ---------------------------------------------------------------------------------------------- the lake
def delta_root(environ: Mapping[str, str] | None = None) -> str:
    return _get("PI_DELTA_ROOT", environ=environ) or _under_home("lake", environ)


def storage_options(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    text = _get("PI_DELTA_STORAGE_OPTIONS", environ=environ)
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError:
        raise ConfigError("PI_DELTA_STORAGE_OPTIONS is not JSON: use e.g. '{\"AWS_REGION\": \"eu-west-1\"}'") from None
    if not isinstance(options, dict):
        raise ConfigError("PI_DELTA_STORAGE_OPTIONS must be a JSON object of string keys and values")
    return {str(k): str(v) for k, v in options.items()}


# ---------------------------------------------------------------------------------------------- streaming
def stream_state_dir(environ: Mapping[str, str] | None = None) -> str:
    return _get("PI_STREAM_STATE_DIR", environ=environ) or _under_home("stream", environ)


def stream_mode(environ: Mapping[str, str] | None = None) -> str:
    mode = _get("PI_STREAM_MODE", "local", environ).lower()
    if mode not in ("local", "external"):
        raise ConfigError(f"PI_STREAM_MODE={mode!r}: use 'local' (Dagster starts the collector) or 'external'")
    return mode


def stream_name_filter(environ: Mapping[str, str] | None = None) -> str | None:
    return _get("PI_STREAM_NAME_FILTER", environ=environ)


def stream_web_ids(environ: Mapping[str, str] | None = None) -> list[str]:
    return [w.strip() for w in _get("PI_STREAM_WEB_IDS", "", environ).split(",") if w.strip()]


def stream_sensor_running(environ: Mapping[str, str] | None = None) -> bool:
    return _get("PI_STREAM_SENSOR_DEFAULT", "", environ).lower() == "running"


def alert_webhook_url(environ: Mapping[str, str] | None = None) -> str | None:
    return _get("PI_PLATFORM_ALERT_WEBHOOK_URL", environ=environ)


# ---------------------------------------------------------------------------------------------- MQTT fan-out
def mqtt_url(environ: Mapping[str, str] | None = None) -> str | None:
    """`mqtt://[user:password@]host[:port]` (or `mqtts://`): set, `pi-platform up` runs the publisher."""
    return _get("PI_MQTT_URL", environ=environ)


def mqtt_topic_prefix(environ: Mapping[str, str] | None = None) -> str:
    return _get("PI_MQTT_TOPIC_PREFIX", "pi/values", environ).strip("/")


def mqtt_topic_by(environ: Mapping[str, str] | None = None) -> str:
    by = _get("PI_MQTT_TOPIC_BY", "tag", environ).lower()
    if by not in ("tag", "af"):
        raise ConfigError(f"PI_MQTT_TOPIC_BY={by!r}: use 'tag' (one topic per tag name) or 'af' (the AF attribute path)")
    return by


def mqtt_state_dir(environ: Mapping[str, str] | None = None) -> str:
    """Where the publisher keeps its checkpoint (the last Delta version and offset the broker acknowledged)."""
    return _get("PI_MQTT_STATE_DIR", environ=environ) or _under_home("mqtt", environ)


# ---------------------------------------------------------------------------------------------- web viewer
VIEWER_HOST = "127.0.0.1"


def viewer_port(environ: Mapping[str, str] | None = None) -> int:
    text = _get("PI_VIEWER_PORT", "3100", environ)
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"PI_VIEWER_PORT={text!r} is not a port number (e.g. 3100)") from None
    if not 0 < port < 65536:
        raise ConfigError(f"PI_VIEWER_PORT={port} must be between 1 and 65535")
    return port


def viewer_url(environ: Mapping[str, str] | None = None) -> str:
    """Where people open the viewer: the links on Dagster's asset pages point here."""
    return (_get("PI_VIEWER_URL", environ=environ) or f"http://{VIEWER_HOST}:{viewer_port(environ)}").rstrip("/")


def require_os_packages(environ: Mapping[str, str] | None = None) -> bool:
    """CI installs the OS packages tests need, so there a missing one is a failure, not a skip."""
    return _get("PI_PLATFORM_REQUIRE_OS_PACKAGES", "", environ).lower() in ("1", "true", "yes")


# ---------------------------------------------------------------------------------------------- batch calendar
def partitions_start(environ: Mapping[str, str] | None = None) -> str:
    return _get("PI_PARTITIONS_START", "2024-01-01", environ)


def daily_lag_minutes(environ: Mapping[str, str] | None = None) -> int:
    text = _get("PI_DAILY_LAG_MINUTES", "60", environ)
    try:
        minutes = int(text)
    except ValueError:
        raise ConfigError(f"PI_DAILY_LAG_MINUTES={text!r} is not a whole number of minutes (e.g. 90)") from None
    if not 0 <= minutes <= 1439:
        raise ConfigError(f"PI_DAILY_LAG_MINUTES={minutes} must be between 0 and 1439")
    return minutes


def today_refresh_cron(environ: Mapping[str, str] | None = None) -> str:
    return _get("PI_TODAY_REFRESH_CRON", "*/15 * * * *", environ)


def maintenance_cron(environ: Mapping[str, str] | None = None) -> str:
    return _get("PI_MAINTENANCE_CRON", "30 3 * * *", environ)


def partition_timezone(environ: Mapping[str, str] | None = None) -> str:
    """The plant's day: an IANA zone name (validated here, so a typo is one line, not a Dagster traceback)."""
    name = _get("PI_PARTITION_TIMEZONE", "UTC", environ)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"PI_PARTITION_TIMEZONE={name!r} is not a known time zone: use an IANA name such as "
                          "'Europe/Berlin' or 'UTC'") from None
    return name


def summary_interval(environ: Mapping[str, str] | None = None) -> str:
    """PI summaryDuration of `recorded_summaries` (an AFTimeSpan such as 1h, 15m)."""
    return _get("PI_SUMMARY_INTERVAL", "1h", environ)


def summary_calculation_basis(environ: Mapping[str, str] | None = None) -> str:
    """PI calculationBasis of `recorded_summaries` (TimeWeighted, EventWeighted, ...)."""
    return _get("PI_SUMMARY_CALCULATION_BASIS", "TimeWeighted", environ)


def interpolation_interval(environ: Mapping[str, str] | None = None) -> str:
    """PI interval of `interpolated_values` (an AFTimeSpan)."""
    return _get("PI_INTERPOLATION_INTERVAL", "1h", environ)


def recorded_max_lag_minutes(environ: Mapping[str, str] | None = None) -> int:
    text = _get("PI_RECORDED_MAX_LAG_MINUTES", str(26 * 60), environ)
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"PI_RECORDED_MAX_LAG_MINUTES={text!r} is not a whole number of minutes") from None


# ---------------------------------------------------------------------------------------------- late-edit healing
def _positive_int(name: str, default: str, environ: Mapping[str, str] | None, unit: str) -> int:
    text = _get(name, default, environ)
    try:
        number = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number of {unit} (e.g. {default})") from None
    if number < 1:
        raise ConfigError(f"{name}={number} must be at least 1")
    return number


def healing_interval_seconds(environ: Mapping[str, str] | None = None) -> int:
    return _positive_int("PI_HEALING_INTERVAL_SECONDS", "60", environ, "seconds")


def healing_lookback_days(environ: Mapping[str, str] | None = None) -> int:
    return _positive_int("PI_HEALING_LOOKBACK_DAYS", "7", environ, "days")


# ---------------------------------------------------------------------------------------------- scale-out
def recorded_shards(environ: Mapping[str, str] | None = None) -> int:
    return _positive_int("PI_RECORDED_SHARDS", "1", environ, "shards")


def recorded_processes(environ: Mapping[str, str] | None = None) -> int:
    """Processes each `recorded_values` shard step uses: N-1 read PI while the step validates and stages."""
    return _positive_int("PI_RECORDED_PROCESSES", "1", environ, "processes")


def stream_shards(environ: Mapping[str, str] | None = None) -> int:
    """Collectors the subscription is split over (each its own process, state directory and Delta app id)."""
    return _positive_int("PI_STREAM_SHARDS", "1", environ, "shards")


def dagster_postgres_url(environ: Mapping[str, str] | None = None) -> str | None:
    """Dagster instance storage in Postgres for `pi-platform up` (checked by launcher/instance.py); the URL may
    hold a password, so it is passed to Dagster through the environment, never written into dagster.yaml or printed."""
    return _get("PI_DAGSTER_POSTGRES_URL", environ=environ)
