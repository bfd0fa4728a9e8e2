"""Resources: the PI Web API server and the Delta lake root, both configured from environment variables.

With nothing set, the PI resource points at the embedded simulator's default address (`pi-platform up`
starts it there), so a fresh install materialises without a PI server. Secrets are read through `EnvVar`
at run time, never baked into the code location snapshot.
"""

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.errors import ConfigError
from pi_platform.storage import DeltaStore

DEFAULT_PI_WEBAPI_URL = "http://127.0.0.1:8765/piwebapi"
DEFAULT_DELTA_ROOT = ".pi_platform/lake"

T = TypeVar("T")


class PIWebAPIResource(dg.ConfigurableResource):
    """A PI Web API server: where it is, how to authenticate, how hard we may push it."""

    url: str = Field(DEFAULT_PI_WEBAPI_URL, description="PI Web API base URL (env PI_WEBAPI_URL)")
    auth: str = Field("anonymous", description="anonymous | basic | bearer | kerberos (env PI_WEBAPI_AUTH)")
    username: str | None = Field(None, description="Basic auth user (env PI_WEBAPI_USERNAME)")
    password: str | None = Field(None, description="Basic auth password (env PI_WEBAPI_PASSWORD)")
    token: str | None = Field(None, description="Bearer token (env PI_WEBAPI_TOKEN)")
    verify_tls: bool = Field(True, description="verify the server certificate")
    ca_bundle: str | None = Field(None, description="PEM CA bundle for a private CA (env PI_WEBAPI_CA_BUNDLE)")
    max_concurrency: int = Field(8, description="concurrent requests per run (env PI_WEBAPI_MAX_CONCURRENCY)")
    max_requests_per_second: float = Field(50.0, description="request rate per run (env PI_WEBAPI_MAX_REQUESTS_PER_SECOND)")
    page_size: int = Field(10_000, description="maxCount of recorded reads (env PI_WEBAPI_PAGE_SIZE)")
    data_server: str | None = Field(None, description="PI Data Archive name; default the first (env PI_WEBAPI_DATA_SERVER)")
    asset_database: str | None = Field(None, description="AF database name; default all (env PI_AF_DATABASE)")

    def client_config(self) -> PIWebAPIConfig:
        return PIWebAPIConfig(
            url=self.url,
            auth=self.auth,
            username=self.username,
            password=self.password,
            token=self.token,
            verify_tls=self.verify_tls,
            ca_bundle=self.ca_bundle,
            max_concurrency=self.max_concurrency,
            max_requests_per_second=self.max_requests_per_second,
            page_size=self.page_size,
            data_server=self.data_server,
        )

    def run(self, work: Callable[[PIWebAPIClient], Awaitable[T]]) -> T:
        """Open a client, run `work(client)` to completion, close the client (assets are synchronous)."""

        async def main() -> T:
            async with PIWebAPIClient(self.client_config()) as client:
                return await work(client)

        return asyncio.run(main())


class DeltaStorageResource(dg.ConfigurableResource):
    """Where the Delta tables live: a directory, or an object-store URI with delta-rs storage options."""

    root: str = Field(DEFAULT_DELTA_ROOT, description="directory or s3://bucket/prefix (env PI_DELTA_ROOT)")
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="delta-rs storage options, e.g. AWS_ENDPOINT_URL, AWS_REGION (env PI_DELTA_STORAGE_OPTIONS, JSON). "
        "Credentials are better left to AWS_* environment variables, which delta-rs reads itself.",
    )

    def store(self) -> DeltaStore:
        return DeltaStore(self.root, self.storage_options)


def _env(name: str, default: Any = None) -> Any:
    """`EnvVar(name)` when the variable is set (resolved at run time), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int(name: str, default: Any) -> Any:
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def _storage_options() -> dict[str, str]:
    text = os.environ.get("PI_DELTA_STORAGE_OPTIONS", "")
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError:
        raise ConfigError("PI_DELTA_STORAGE_OPTIONS is not JSON: use e.g. '{\"AWS_REGION\": \"eu-west-1\"}'") from None
    if not isinstance(options, dict):
        raise ConfigError("PI_DELTA_STORAGE_OPTIONS must be a JSON object of string keys and values")
    return {str(k): str(v) for k, v in options.items()}


def pi_webapi_from_env() -> PIWebAPIResource:
    return PIWebAPIResource(
        url=_env("PI_WEBAPI_URL", DEFAULT_PI_WEBAPI_URL),
        auth=_env("PI_WEBAPI_AUTH", "anonymous"),
        username=_env("PI_WEBAPI_USERNAME"),
        password=_env("PI_WEBAPI_PASSWORD"),
        token=_env("PI_WEBAPI_TOKEN"),
        verify_tls=os.environ.get("PI_WEBAPI_VERIFY_TLS", "true").lower() not in ("0", "false", "no"),
        ca_bundle=_env("PI_WEBAPI_CA_BUNDLE"),
        max_concurrency=_env_int("PI_WEBAPI_MAX_CONCURRENCY", 8),
        max_requests_per_second=float(os.environ.get("PI_WEBAPI_MAX_REQUESTS_PER_SECOND") or 50.0),
        page_size=_env_int("PI_WEBAPI_PAGE_SIZE", 10_000),
        data_server=_env("PI_WEBAPI_DATA_SERVER"),
        asset_database=_env("PI_AF_DATABASE"),
    )


def delta_storage_from_env() -> DeltaStorageResource:
    return DeltaStorageResource(root=_env("PI_DELTA_ROOT", DEFAULT_DELTA_ROOT), storage_options=_storage_options())


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    return {"pi_webapi": pi_webapi_from_env(), "delta": delta_storage_from_env()}
