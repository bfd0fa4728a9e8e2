"""Connection settings for one PI Web API server, from code, Dagster config or `PI_WEBAPI_*` env vars.

Secrets are `SecretStr` so they print as `**********` in reprs, logs and tracebacks, and validation
errors are rendered from field names and messages only (never the rejected input), because a
ValidationError would otherwise echo the password back. Defaults are deliberately gentle on the server:
a production PI Web API is shared with operators' displays, so concurrency and request rate are bounded.
"""

import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from pi_platform import settings
from pi_platform.errors import ConfigError

AuthMethod = Literal["anonymous", "basic", "bearer", "kerberos"]

ENV_PREFIX = "PI_WEBAPI_"
_SECRET_FIELDS = {"password", "token"}
# PI Web API's MaxReturnedItemsPerCall default; a maxCount above it is answered with 400.
SERVER_MAX_ITEMS = 150_000
# maxCount of recorded reads: a tenth of the server's cap keeps one response small enough to parse as it streams.
DEFAULT_PAGE_SIZE = 10_000


class PIWebAPIConfig(BaseModel):
    """Where the server is, how to authenticate, and how hard we may push it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="PI Web API base URL, e.g. https://pi.example.com/piwebapi")
    auth: AuthMethod = "anonymous"
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    keytab: str | None = Field(None, description="auth=kerberos: a service account's keytab (else the ticket cache)")
    principal: str | None = Field(None, description="auth=kerberos: whose tickets, e.g. svc-pi@EXAMPLE.COM")
    spn: str | None = Field(None, description="auth=kerberos: the server's SPN when not HTTP/<URL host>")
    mutual_auth: Literal["required", "optional", "disabled"] = Field(
        "optional", description="auth=kerberos: whether the server must prove its identity")
    delegate: bool = Field(False, description="auth=kerberos: forward our ticket (unconstrained delegation)")
    verify_tls: bool = True
    ca_bundle: str | None = Field(None, description="PEM file with the CA(s) that signed the server certificate")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    backoff_base_s: float = Field(0.25, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    max_concurrency: int = Field(8, ge=1, le=256)
    max_requests_per_second: float | None = Field(50.0, gt=0, description="None (or 0, 'none') = no client-side limit")
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=SERVER_MAX_ITEMS, description="maxCount per recorded request")
    server_max_items: int = Field(SERVER_MAX_ITEMS, ge=1, description="the server's MaxReturnedItemsPerCall")
    list_page_size: int = Field(1000, ge=1, le=SERVER_MAX_ITEMS, description="maxCount for list endpoints")
    max_url_length: int = Field(4096, ge=256, description="split multi-stream reads to keep URLs below this")
    window_s: float = Field(86_400.0, gt=0, description="long recorded ranges are read in windows of this size")
    data_server: str | None = Field(None, description="PI Data Archive name; default: the first one")
    time_zone: str | None = Field(None, description="IANA zone for 't', 'y' and naive times (default UTC)")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(_one_line(exc)) from None

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://pi.example.com/piwebapi")
        if parts.username or parts.password:
            raise ValueError("must not contain credentials; set username/password (or token) instead")
        return url.rstrip("/")

    @field_validator("time_zone")
    @classmethod
    def _check_zone(cls, zone: str | None) -> str | None:
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {zone!r}; use an IANA name such as Europe/Oslo") from None
        return zone

    @field_validator("max_requests_per_second", mode="before")
    @classmethod
    def _unlimited(cls, value: Any) -> Any:
        """Env vars cannot say None; accept 0 / 'none' / 'unlimited' for "no client-side rate limit"."""
        if isinstance(value, str) and value.strip().lower() in ("none", "unlimited", "0", ""):
            return None
        return None if value == 0 else value

    @model_validator(mode="after")
    def _check_auth(self) -> "PIWebAPIConfig":
        if self.auth == "basic" and (not self.username or self.password is None):
            raise ValueError("auth=basic needs username and password (PI_WEBAPI_USERNAME / PI_WEBAPI_PASSWORD)")
        if self.auth == "bearer" and self.token is None:
            raise ValueError("auth=bearer needs a token (PI_WEBAPI_TOKEN)")
        if self.page_size > self.server_max_items:
            raise ValueError(f"page_size must not exceed server_max_items ({self.server_max_items})")
        if self.keytab and not os.path.isfile(self.keytab):
            raise ValueError(f"keytab {self.keytab!r} is not a file; point it at the service account's keytab")
        if self.spn and "/" not in self.spn.strip("/"):
            raise ValueError(f"spn {self.spn!r} must look like HTTP/pi.example.com")
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise ValueError(f"ca_bundle {self.ca_bundle!r} is not a file; point it at a PEM CA bundle")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "PIWebAPIConfig":
        """Read `PI_WEBAPI_<FIELD>` variables (e.g. PI_WEBAPI_URL, PI_WEBAPI_PASSWORD); overrides win if not None."""
        environ = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        for name in cls.model_fields:
            value = environ.get(ENV_PREFIX + name.upper())
            if value is not None and value != "":
                data[name] = value
        data.update({k: v for k, v in overrides.items() if v is not None})
        if "url" not in data:
            raise ConfigError("no PI Web API URL: set PI_WEBAPI_URL or pass --url https://host/piwebapi")
        return cls(**data)


    @classmethod
    def from_settings(cls, **overrides: Any) -> "PIWebAPIConfig":
        """`from_env`, but with no URL set it points at the embedded simulator (pi_platform/settings.py): what
        the platform's own commands and resources use; `pi-platform doctor` insists on a URL instead."""
        if overrides.get("url") is None:
            overrides["url"] = settings.pi_url()
        return cls.from_env(**overrides)


def _one_line(exc: ValidationError) -> str:
    """`field: message` for each problem, without the rejected input (it could be a password)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"] and error["loc"][0] in _SECRET_FIELDS:
            message = "invalid value (not shown)"
        problems.append(f"{field}: {message}" if field else message)
    return "invalid PI Web API config: " + "; ".join(problems)
