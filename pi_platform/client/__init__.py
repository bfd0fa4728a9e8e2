"""Async PI Web API client: typed errors, a polite transport, loss-free paging, Arrow output.

    from pi_platform.client import PIWebAPIClient, PIWebAPIConfig

    config = PIWebAPIConfig.from_env()            # PI_WEBAPI_URL, PI_WEBAPI_AUTH, PI_WEBAPI_PASSWORD, ...
    async with PIWebAPIClient(config) as pi:
        server = await pi.data_server()
        points = await pi.points(server["WebId"], name_filter="Pump*")
        async for batch in pi.recorded([p["WebId"] for p in points], "*-1d", "*"):
            batch.values    # pa.Table in pi_platform.value_columns.VALUE_SCHEMA
            batch.rejects   # items PI returned that are not values, with the reason and raw JSON

Layers, bottom up: `config` (settings, secrets) -> `auth` (Kerberos: `negotiate`) -> `throttle` (rate limit, backoff) ->
`transport` (HTTP, retries, PI error mapping) -> `paging` (startIndex lists, recorded time cursor) ->
`columns` (JSON -> Arrow) -> `recorded` (multi-tag fan-out) -> `client` (the public methods);
`frames` turns object lists into tables and `doctor` is the `pi-platform doctor` command.
"""

from pi_platform.client.client import PIWebAPIClient
from pi_platform.client.columns import ValueBatch
from pi_platform.client.config import PIWebAPIConfig

__all__ = ["PIWebAPIClient", "PIWebAPIConfig", "ValueBatch"]
