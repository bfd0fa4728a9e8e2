"""Helpers for client tests: run the async client to completion and compute simulator ground truth."""

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import pyarrow as pa

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig, ValueBatch
from pi_platform.value_columns import sort_values


def settled_day(plant) -> tuple[datetime, datetime]:
    """A full 24 h ending an hour before the simulator's now: no value or correction in it can still change."""
    end = plant.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return end - timedelta(days=1), end


def ground_truth(plant, web_ids: Sequence[str], start: datetime, end: datetime) -> pa.Table:
    return sort_values(pa.concat_tables([plant.recorded(w, start, end) for w in web_ids]))


def read_recorded(config: PIWebAPIConfig, web_ids: Sequence[str], start, end,
                  spy: list | None = None) -> tuple[ValueBatch, PIWebAPIClient]:
    """Read through the real client; `spy` collects (path, params) of every request the reader makes."""

    async def go() -> tuple[ValueBatch, PIWebAPIClient]:
        async with PIWebAPIClient(config) as pi:
            if spy is not None:
                original = pi.transport.get

                async def recording_get(path, params=None, **options):
                    spy.append((path, params))
                    return await original(path, params=params, **options)

                pi.transport.get = recording_get  # type: ignore[method-assign]
            return await pi.recorded_batch(web_ids, start, end), pi

    return asyncio.run(go())


def run(coro):
    return asyncio.run(coro)
