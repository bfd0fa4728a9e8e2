"""The one settings path: defaults that do not depend on the working directory, and one-line errors."""

import os
from pathlib import Path

import pytest

from pi_platform import settings
from pi_platform.client.config import PIWebAPIConfig
from pi_platform.errors import ConfigError

CHECKOUT = Path(__file__).resolve().parents[2]


def test_default_paths_live_under_the_project_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert settings.delta_root({}) == str(CHECKOUT / ".pi_platform" / "lake")
    assert settings.stream_state_dir({}) == str(CHECKOUT / ".pi_platform" / "stream")
    home = {"PI_PLATFORM_HOME": str(tmp_path / "plant")}
    assert settings.stream_state_dir(home) == str(tmp_path / "plant" / ".pi_platform" / "stream")
    assert settings.delta_root({**home, "PI_DELTA_ROOT": "s3://lake/pi"}) == "s3://lake/pi"
    assert settings.delta_root({"PI_DELTA_ROOT": ""}) == str(CHECKOUT / ".pi_platform" / "lake")  # blank = unset


def test_the_connection_defaults_to_the_embedded_simulator_and_env_wins(monkeypatch):
    for name in [n for n in os.environ if n.startswith("PI_WEBAPI_")]:
        monkeypatch.delenv(name)
    assert PIWebAPIConfig.from_settings().url == settings.DEFAULT_PI_WEBAPI_URL
    monkeypatch.setenv("PI_WEBAPI_URL", "https://pi.example.com/piwebapi")
    monkeypatch.setenv("PI_WEBAPI_MAX_CONCURRENCY", "3")
    config = PIWebAPIConfig.from_settings()
    assert (config.url, config.max_concurrency) == ("https://pi.example.com/piwebapi", 3)
    assert PIWebAPIConfig.from_settings(url="http://127.0.0.1:9/piwebapi").url == "http://127.0.0.1:9/piwebapi"


@pytest.mark.parametrize(("environ", "message"), [
    ({"PI_DELTA_STORAGE_OPTIONS": "{not json"}, "PI_DELTA_STORAGE_OPTIONS is not JSON"),
    ({"PI_DELTA_STORAGE_OPTIONS": "[1, 2]"}, "must be a JSON object"),
    ({"PI_DAILY_LAG_MINUTES": "an hour"}, "not a whole number of minutes"),
    ({"PI_DAILY_LAG_MINUTES": "1440"}, "between 0 and 1439"),
    ({"PI_STREAM_MODE": "kubernetes"}, "use 'local'"),
])
def test_malformed_settings_are_one_line_with_the_fix(environ, message):
    readers = {"PI_DELTA_STORAGE_OPTIONS": settings.storage_options, "PI_DAILY_LAG_MINUTES": settings.daily_lag_minutes,
               "PI_STREAM_MODE": settings.stream_mode}
    (name,) = environ
    with pytest.raises(ConfigError, match=message) as failure:
        readers[name](environ)
    assert "\n" not in str(failure.value)


def test_storage_options_and_stream_lists_parse():
    options = settings.storage_options({"PI_DELTA_STORAGE_OPTIONS": '{"AWS_REGION": "eu-west-1", "AWS_ALLOW_HTTP": true}'})
    assert options == {"AWS_REGION": "eu-west-1", "AWS_ALLOW_HTTP": "True"}
    assert settings.stream_web_ids({"PI_STREAM_WEB_IDS": " A, B ,,C"}) == ["A", "B", "C"]
