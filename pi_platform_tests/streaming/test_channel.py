"""The channel client against the real simulator: URL splitting, options, typed errors, the watchdog."""

import asyncio
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pyarrow.compute as pc
import pytest

from pi_platform.client import PIWebAPIConfig
from pi_platform.streaming.channel import (
    ChannelOptions,
    ChannelSocket,
    channel_urls,
    handshake_headers,
    is_heartbeat,
)
from pi_platform.streaming.errors import ChannelAuthError, ChannelRejected, DeadChannelError
from pi_platform.streaming.messages import parse_records
from pi_platform.streaming.wal import WalRecord
from pi_platform.value_columns import VALUE_SCHEMA, sort_values


def test_webids_split_so_every_url_stays_within_the_limit():
    web_ids = [f"F1DPabcdefghijklmnopqrstuvwxyz{i:05d}" for i in range(400)]
    options = ChannelOptions(max_url_length=1000, heartbeat_rate=3, include_initial_values=True)
    groups = channel_urls("https://pi.example.com/piwebapi", web_ids, options)
    assert len(groups) > 10
    assert [w for ids, _ in groups for w in ids] == web_ids  # all of them, once, in order
    for ids, url in groups:
        assert len(url) <= 1000
        parts = urlsplit(url)
        assert (parts.scheme, parts.path) == ("wss", "/piwebapi/streamsets/channel")
        query = parse_qs(parts.query)
        assert query["webId"] == ids
        assert query["includeInitialValues"] == ["true"] and query["heartbeatRate"] == ["3"]


async def _first_messages(url: str, options: ChannelOptions, headers: dict, count: int) -> list[bytes]:
    messages = []
    async for payload in ChannelSocket(url, options, headers, None).messages():
        messages.append(payload)
        if len(messages) == count:
            break
    return messages


def test_initial_values_then_heartbeats_on_a_frozen_plant(make_simulator):
    sim = make_simulator(n_tags=6, now=datetime(2024, 5, 1, 12, tzinfo=timezone.utc))  # frozen: only heartbeats
    web_ids = [p.web_id for p in sim.plant.points[:4]]
    options = ChannelOptions(include_initial_values=True, heartbeat_rate=1, dead_channel_timeout_s=10)
    ((_, url),) = channel_urls(sim.base_url, web_ids, options)
    first, second = asyncio.run(_first_messages(url, options, {}, 2))
    rows = parse_records([WalRecord(0, 0, "c1#1", first)]).rows
    assert sorted(set(rows["web_id"].to_pylist())) == sorted(web_ids)
    for web_id in web_ids:  # the current value: the plant's last recorded group, every value of it
        got = sort_values(rows.filter(pc.equal(rows["web_id"], web_id)).select(VALUE_SCHEMA.names))
        truth = sim.plant.recorded(web_id, "*-1d", "*")
        last = truth.filter(pc.equal(truth["timestamp"], truth["timestamp"][-1]))
        assert got.equals(sort_values(last).cast(got.schema))
    assert is_heartbeat(second)


def test_bad_credentials_and_unknown_webids_are_typed_errors(make_simulator):
    sim = make_simulator(n_tags=4, auth="basic")
    options = ChannelOptions()
    web_id = sim.plant.points[0].web_id
    ((_, url),) = channel_urls(sim.base_url, [web_id], options)
    wrong = handshake_headers(PIWebAPIConfig(url=sim.base_url, auth="basic", username="pisim", password="nope"))
    with pytest.raises(ChannelAuthError, match="401") as excinfo:
        asyncio.run(_first_messages(url, options, wrong, 1))
    assert "nope" not in str(excinfo.value)
    right = handshake_headers(PIWebAPIConfig(url=sim.base_url, auth="basic", username="pisim", password="pisim"))
    ((_, bad_url),) = channel_urls(sim.base_url, ["F1DPnotAWebId"], options)
    with pytest.raises(ChannelRejected):
        asyncio.run(_first_messages(bad_url, options, right, 1))


def test_watchdog_turns_a_silent_open_socket_into_a_typed_error(make_simulator, stalling_proxy):
    sim = make_simulator(n_tags=4, values_per_minute=600)
    proxy = stalling_proxy(urlsplit(sim.base_url).port)
    options = ChannelOptions(heartbeat_rate=1, dead_channel_timeout_s=1.5, ping_interval_s=None)
    ((_, url),) = channel_urls(f"http://127.0.0.1:{proxy.port}/piwebapi", [sim.plant.points[0].web_id], options)

    async def scenario() -> int:
        received = 0
        async for _ in ChannelSocket(url, options, {}, None).messages():
            received += 1
            if received == 2:
                assert proxy.stall_open() == 1
        return received

    with pytest.raises(DeadChannelError, match="no data or heartbeat for 1.5s"):
        asyncio.run(scenario())
