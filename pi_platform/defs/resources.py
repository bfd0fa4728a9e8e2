"""Resources: the PI Web API server and the Delta lake, both wrapping `pi_platform.settings`.

With nothing set, the PI resource points at the embedded simulator's default address (`pi-platform up`
starts it there), so a fresh install materialises without a PI server. The resources do not re-declare the
connection field by field: `settings` reads `PI_WEBAPI_*` and `PI_DELTA_*` in the run process when a run
needs them, so a secret never enters Dagster's config or its code location snapshot, and the collector, the
CLI and the assets cannot disagree about a setting. `overrides` is for the exceptions (tests, a second
server): any `PIWebAPIConfig` field by name, validated by it with its one-line errors.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import dagster as dg
from pydantic import Field

from pi_platform import settings
from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.storage import DeltaStore

T = TypeVar("T")


class PIWebAPIResource(dg.ConfigurableResource):
    """A PI Web API server: `PI_WEBAPI_*` (see pi_platform/settings.py), plus optional per-field overrides."""

    overrides: dict[str, str] = Field(
        default_factory=dict,
        description="PIWebAPIConfig fields that win over PI_WEBAPI_* (e.g. url, max_requests_per_second); "
        "keep secrets in the environment",
    )
    asset_database: str | None = Field(None, description="AF database name; default env PI_AF_DATABASE, else all")

    def client_config(self) -> PIWebAPIConfig:
        return PIWebAPIConfig.from_settings(**self.overrides)

    @property
    def af_database(self) -> str | None:
        return self.asset_database or settings.af_database()

    def run(self, work: Callable[[PIWebAPIClient], Awaitable[T]]) -> T:
        """Open a client, run `work(client)` to completion, close the client (assets are synchronous)."""

        async def main() -> T:
            async with PIWebAPIClient(self.client_config()) as client:
                return await work(client)

        return asyncio.run(main())


class DeltaStorageResource(dg.ConfigurableResource):
    """Where the Delta tables live: a directory, or an object-store URI with delta-rs storage options."""

    root: str | None = Field(None, description="directory or s3://bucket/prefix; default env PI_DELTA_ROOT")
    storage_options: dict[str, str] | None = Field(
        None,
        description="delta-rs storage options, e.g. AWS_ENDPOINT_URL, AWS_REGION; default env PI_DELTA_STORAGE_OPTIONS "
        "(JSON). Credentials are better left to AWS_* environment variables, which delta-rs reads itself.",
    )

    def store(self) -> DeltaStore:
        options = settings.storage_options() if self.storage_options is None else self.storage_options
        return DeltaStore(self.root or settings.delta_root(), options)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {"pi_webapi": PIWebAPIResource(), "delta": DeltaStorageResource()}
