"""Configuration: validation in one line, env vars, and secrets that never show."""

import pytest

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.errors import ConfigError, user_message

SECRET = "s3cr3t-Pa55word!"


def test_repr_and_dump_hide_secrets() -> None:
    config = PIWebAPIConfig(url="https://pi.example.com/piwebapi", auth="basic", username="DOMAIN\\me", password=SECRET)
    bearer = PIWebAPIConfig(url="https://pi.example.com/piwebapi", auth="bearer", token=SECRET)
    for text in (repr(config), str(config), repr(bearer), str(bearer.model_dump()), repr(PIWebAPIClient(bearer))):
        assert SECRET not in text
    assert config.password is not None and config.password.get_secret_value() == SECRET


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"url": "pi.example.com"}, "url: must be an http(s) URL"),
        ({"url": f"https://me:{SECRET}@pi.example.com/piwebapi"}, "must not contain credentials"),
        ({"url": "https://pi/piwebapi", "auth": "basic", "username": "me"}, "auth=basic needs username and password"),
        ({"url": "https://pi/piwebapi", "auth": "bearer"}, "needs a token"),
        ({"url": "https://pi/piwebapi", "auth": "ntlm"}, "auth: Input should be"),
        ({"url": "https://pi/piwebapi", "max_concurrency": 0}, "max_concurrency"),
        ({"url": "https://pi/piwebapi", "page_size": 150_001}, "page_size"),
        ({"url": "https://pi/piwebapi", "ca_bundle": "/nonexistent/ca.pem"}, "is not a file"),
        ({"url": "https://pi/piwebapi", "password": [SECRET]}, "password: invalid value (not shown)"),
    ],
)
def test_bad_config_is_one_line_without_secrets(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        PIWebAPIConfig(**kwargs)
    message = user_message(info.value)
    assert message is not None and fragment in message and "\n" not in str(info.value)
    assert SECRET not in str(info.value)


def test_from_env_reads_pi_webapi_variables() -> None:
    env = {"PI_WEBAPI_URL": "https://pi.example.com/piwebapi/", "PI_WEBAPI_AUTH": "basic",
           "PI_WEBAPI_USERNAME": "me", "PI_WEBAPI_PASSWORD": SECRET, "PI_WEBAPI_VERIFY_TLS": "false",
           "PI_WEBAPI_MAX_CONCURRENCY": "3"}
    config = PIWebAPIConfig.from_env(env, max_concurrency=5)
    assert config.url == "https://pi.example.com/piwebapi" and config.auth == "basic" and not config.verify_tls
    assert config.max_concurrency == 5  # explicit overrides win over the environment
    with pytest.raises(ConfigError, match="PI_WEBAPI_URL"):
        PIWebAPIConfig.from_env({})


def test_kerberos_needs_no_ticket_until_the_first_request() -> None:
    """Building a client is offline: tickets are looked for per request (pi_platform_tests/kerberos/ has the KDC)."""
    from pi_platform.client.auth import NegotiateAuth

    config = PIWebAPIConfig(url="https://pi.example.com/piwebapi", auth="kerberos", spn="HTTP/pi-alias.example.com")
    auth = PIWebAPIClient(config).transport._client.auth
    assert isinstance(auth, NegotiateAuth) and repr(auth) == "NegotiateAuth(service='HTTP/pi-alias.example.com')"
    with pytest.raises(ConfigError, match="spn 'pi' must look like HTTP/pi.example.com"):
        PIWebAPIConfig(url="https://pi.example.com/piwebapi", auth="kerberos", spn="pi")


def test_bad_time_expressions_are_one_line_errors() -> None:
    from pi_platform.client.errors import TimeRangeError

    pi = PIWebAPIClient(PIWebAPIConfig(url="https://pi.example.com/piwebapi"))
    with pytest.raises(TimeRangeError, match="cannot read time 'yesterday-ish'"):
        pi.resolve_range("yesterday-ish", "*")
    start, end = pi.resolve_range("*-1d", "*")
    assert (end - start).total_seconds() == 86_400
    assert start.tzinfo is not None and pi.resolve_range("t", "t+1h")[0].hour == 0  # UTC midnight by default
    oslo = PIWebAPIClient(PIWebAPIConfig(url="https://pi.example.com/piwebapi", time_zone="Europe/Oslo"))
    assert oslo.resolve_range("2024-07-01T00:00:00", "*")[0].hour == 22  # naive times are local to the zone
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        PIWebAPIConfig(url="https://pi.example.com/piwebapi", time_zone="Mars/Olympus")
