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
| `PI_AF_DATABASE` | AF database the batch assets read | all |
| `PI_DELTA_ROOT`, `PI_DELTA_STORAGE_OPTIONS` (JSON) | the lake: a directory or `s3://bucket/prefix`, and delta-rs storage options | `<home>/.pi_platform/lake` |
| `PI_STREAM_STATE_DIR` | collector WAL, status, subscription, gap ledger | `<home>/.pi_platform/stream` |
| `PI_STREAM_MODE`, `PI_STREAM_NAME_FILTER`, `PI_STREAM_WEB_IDS`, `PI_STREAM_SENSOR_DEFAULT` | who runs the collector, what it subscribes, whether its sensor starts running | local, none, none, stopped |
| `PI_PLATFORM_ALERT_WEBHOOK_URL` | where ERROR alerts are POSTed | none |
| `PI_PLATFORM_REQUIRE_OS_PACKAGES` | tests needing an OS package (chromium...) fail instead of skipping where it is missing; `.ci/run` sets it | unset (skip) |
| `PI_PARTITIONS_START`, `PI_DAILY_LAG_MINUTES`, `PI_TODAY_REFRESH_CRON`, `PI_MAINTENANCE_CRON`, `PI_RECORDED_MAX_LAG_MINUTES` | batch calendar | 2024-01-01, 60, `*/15 * * * *`, `30 3 * * *`, 1560 |
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def recorded_max_lag_minutes(environ: Mapping[str, str] | None = None) -> int:
    text = _get("PI_RECORDED_MAX_LAG_MINUTES", str(26 * 60), environ)
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"PI_RECORDED_MAX_LAG_MINUTES={text!r} is not a whole number of minutes") from None
