"""WebSocket channels over a real socket: what they push, folded by (stream, timestamp, position), equals /recorded.

The clock is frozen and stepped through the admin API, so every poll's `now` is known and the ground
truth is exact (corrections included).
"""

import asyncio
import base64
from datetime import datetime, timedelta

import httpx
import orjson
import pytest
import websockets

from pi_platform import webid
from pi_platform.pitime import format_time
from pi_platform.value_columns import sort_values
from pi_platform_tests.simulator.support import FROZEN_NOW, items_to_table


def _channel_url(sim, web_ids, **options) -> str:
    query = "&".join([f"webId={w}" for w in web_ids] + [f"{k}={v}" for k, v in options.items()])
    return f"{sim.ws_url}/streamsets/channel?{query}"


async def _next(ws, timeout: float = 10.0) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _fold(messages: list[dict], after: datetime) -> dict[str, dict]:
    """Per stream, (timestamp, position) -> item, later messages replacing earlier ones (corrections)."""
    folded: dict[str, dict] = {}
    for message in messages:
        for stream in message["Items"]:
            seen: dict[str, int] = {}
            for item in stream["Items"]:
                position = seen.get(item["Timestamp"], 0)
                seen[item["Timestamp"]] = position + 1
                if _ts(item["Timestamp"]) > after:
                    folded.setdefault(stream["WebId"], {})[(item["Timestamp"], position)] = item
    return folded


def test_channel_push_equals_recorded_including_corrections(make_simulator):
    sim = make_simulator(now=FROZEN_NOW, channel_poll_interval_s=0.1)
    plant = sim.plant
    points = [*plant.points[:4], plant.catalog.point_by_name("EDGE.Dense"), plant.catalog.point_by_name("EDGE.SameTs")]
    web_ids = [p.web_id for p in points]
    steps = [FROZEN_NOW + timedelta(minutes=2 * k) for k in range(1, 11)]

    async def run() -> tuple[dict, list[dict]]:
        async with websockets.connect(_channel_url(sim, web_ids, includeInitialValues="true")) as ws:
            initial = await _next(ws)
            messages = []
            async with httpx.AsyncClient() as admin:
                for at in steps:
                    await admin.post(sim.admin_url + "/clock", json={"now": format_time(at)})
                    messages.append(await _next(ws))
            return initial, messages

    initial, messages = asyncio.run(run())
    assert [s["WebId"] for s in initial["Items"]] == web_ids
    for point, stream in zip(points, initial["Items"]):
        end = plant.recorded(point.web_id, FROZEN_NOW - timedelta(hours=1), FROZEN_NOW)
        assert stream["Items"][-1]["Timestamp"] == format_time(end["timestamp"][-1].as_py())
    folded = _fold(messages, FROZEN_NOW)
    substituted = 0
    for point in points:
        items = [folded.get(point.web_id, {})[key] for key in sorted(folded.get(point.web_id, {}))]
        got = items_to_table(items, point.web_id, point.name, point.units)
        want = plant.recorded(point.web_id, FROZEN_NOW + timedelta(microseconds=1), steps[-1], now=steps[-1])
        assert sort_values(got).equals(want), point.name
        substituted += sum(want["substituted"].to_pylist())
    assert substituted > 0  # corrections were pushed again with Substituted=true
    assert all(message["Items"] for message in messages)


def test_element_channel_heartbeat_and_only_changed_streams(make_simulator):
    sim = make_simulator(now=FROZEN_NOW, channel_poll_interval_s=0.05)
    pump = next(e for e in sim.plant.elements if e.template == "Pump")
    expected = {a.web_id for a in pump.attributes if a.point is not None}

    async def run() -> tuple[list[dict], dict]:
        url = f"{sim.ws_url}/streamsets/{pump.web_id}/channel?includeInitialValues=true&heartbeatRate=3"
        async with websockets.connect(url) as ws:
            first = await _next(ws)
            beats = [await _next(ws), await _next(ws)]
            async with httpx.AsyncClient() as admin:
                await admin.post(
                    sim.admin_url + "/clock", json={"now": format_time(FROZEN_NOW + timedelta(seconds=90))}
                )
            # Heartbeats already on their way may arrive before the first poll after the clock moved.
            for _ in range(100):
                message = await _next(ws)
                if message["Items"]:
                    return [first, *beats], message
                assert message == {"Links": {}, "Items": []}
            raise AssertionError("no data message after the clock moved 90 s")

    (first, *beats), changed = asyncio.run(run())
    assert {s["WebId"] for s in first["Items"]} == expected
    assert beats == [{"Links": {}, "Items": []}] * 2
    truth = {
        a.web_id
        for a in pump.attributes
        if a.point is not None
        and sim.plant.recorded(
            a.point.web_id, FROZEN_NOW + timedelta(microseconds=1), FROZEN_NOW + timedelta(seconds=90)
        ).num_rows
    }
    assert {s["WebId"] for s in changed["Items"]} == truth


def test_channel_auth_and_bad_webid_refused_before_upgrade(make_simulator):
    sim = make_simulator(auth="basic", password="pw")
    url = _channel_url(sim, [sim.plant.points[0].web_id])

    async def run() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url):
                pass
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"] == 'Basic realm="PISIM"'
        auth = {"Authorization": "Basic " + base64.b64encode(b"pisim:pw").decode()}
        with pytest.raises(websockets.InvalidStatus) as bad:
            async with websockets.connect(f"{sim.ws_url}/streams/F1DPnope/channel", additional_headers=auth):
                pass
        assert bad.value.response.status_code == 400
        assert orjson.loads(bad.value.response.body) == {"Errors": ["Unknown or invalid WebID format: 'F1DPnope'."]}
        async with websockets.connect(url + "&includeInitialValues=true", additional_headers=auth) as ws:
            assert (await _next(ws))["Items"][0]["WebId"] == sim.plant.points[0].web_id

    asyncio.run(run())


def test_admin_drop_closes_channels(make_simulator):
    sim = make_simulator(channel_poll_interval_s=0.05)

    async def run() -> int:
        async with websockets.connect(f"{sim.ws_url}/streams/{sim.plant.points[0].web_id}/channel") as ws:
            async with httpx.AsyncClient() as admin:
                for _ in range(50):
                    if (await admin.get(sim.admin_url + "/channels")).json()["open"] == 1:
                        break
                    await asyncio.sleep(0.05)
                assert (await admin.post(sim.admin_url + "/channels/drop")).json() == {"dropped": 1}
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code

    assert asyncio.run(run()) == 1011


def test_paused_stream_stops_until_resumed(make_simulator):
    sim = make_simulator(now=FROZEN_NOW, values_per_minute=10)
    tag = sim.plant.points[0]
    admin = httpx.Client(base_url=sim.admin_url)
    assert admin.post("/streams/pause", json={"names": [tag.name]}).json()["paused"] == [tag.name]
    admin.post("/clock", json={"now": format_time(FROZEN_NOW + timedelta(hours=1))})
    assert admin.post("/streams/resume", json={"names": [tag.name]}).json()["resumed"] == [tag.name]
    admin.post("/clock", json={"now": format_time(FROZEN_NOW + timedelta(hours=2))})
    table = sim.plant.recorded(tag.web_id, FROZEN_NOW - timedelta(hours=1), FROZEN_NOW + timedelta(hours=2))
    stamps = table["timestamp"].to_pylist()
    assert not [t for t in stamps if FROZEN_NOW < t <= FROZEN_NOW + timedelta(hours=1)]
    assert [t for t in stamps if t > FROZEN_NOW + timedelta(hours=1)] and [t for t in stamps if t <= FROZEN_NOW]
    assert admin.post("/streams/pause", json={"names": ["NO.SUCH"]}).status_code == 400
    admin.close()


def test_drop_interval_fault_and_webid_type(make_simulator):
    sim = make_simulator(channel_poll_interval_s=0.05, faults={"channel_drop_interval_s": 0.3})
    point = sim.plant.points[0]

    async def run() -> tuple[dict, int]:
        url = f"{sim.ws_url}/streams/{point.web_id}/channel?includeInitialValues=true&webIdType=PathOnly"
        async with websockets.connect(url) as ws:
            first = await _next(ws)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            return first, closed.value.rcvd.code

    first, code = asyncio.run(run())
    assert first["Items"][0]["WebId"] == webid.point_path_webid(sim.plant.data_server_name, point.name)
    assert code == 1011


def test_fast_channel_with_late_polls_failures_and_edits_equals_recorded(make_simulator):
    """Channels render generated streams ahead of time and cut each poll out of that text: at 600 values/min,
    with polls late enough that corrections are due before a value is first sent, a tag paused then resumed
    and an edit in the window still to come, the folded pushes equal /recorded."""
    sim = make_simulator(now=FROZEN_NOW, values_per_minute=600, channel_poll_interval_s=0.05)
    plant = sim.plant
    points = plant.points[:20]
    paused, edited = points[3], next(p for p in points if p.point_type.startswith("Float"))
    steps_s = [0.3, 0.3, 0.5, 7.0, 0.4, 90.0, 1.0, "pause", 2.0, 30.0, "edit", 5.0, 45.0, "resume", 0.7, 120.0, 0.2]

    async def run() -> tuple[list[dict], datetime]:
        at = FROZEN_NOW
        messages = []
        async with websockets.connect(_channel_url(sim, [p.web_id for p in points]), max_size=None) as ws:
            async with httpx.AsyncClient(base_url=sim.admin_url) as admin:
                for step in steps_s:
                    if step == "pause":
                        await admin.post("/streams/pause", json={"names": [paused.name]})
                    elif step == "resume":
                        await admin.post("/streams/resume", json={"names": [paused.name]})
                    elif step == "edit":
                        edit = {"name": edited.name, "at": format_time(at + timedelta(seconds=3)), "value": 1.5}
                        assert (await admin.post("/history/edit", json=edit)).status_code == 200
                    else:
                        at += timedelta(seconds=step)
                        await admin.post("/clock", json={"now": format_time(at)})
                        messages.append(await _next(ws))
        return messages, at

    messages, end = asyncio.run(run())
    folded = _fold(messages, FROZEN_NOW)
    for point in points:
        items = [folded.get(point.web_id, {})[key] for key in sorted(folded.get(point.web_id, {}))]
        got = items_to_table(items, point.web_id, point.name, point.units)
        want = plant.recorded(point.web_id, FROZEN_NOW + timedelta(microseconds=1), end, now=end)
        assert sort_values(got).equals(want), point.name
    assert any(v for v in plant.recorded(edited.web_id, FROZEN_NOW, end, now=end)["value"].to_pylist() if v == 1.5)
    substituted = [i for m in messages for s in m["Items"] for i in s["Items"] if i["Substituted"]]
    assert len(substituted) > 3  # corrections sent late (after a step past their time) and re-sent


def test_channel_negotiates_no_compression_and_sends_text(make_simulator):
    """PI Web API's WebSockets (.NET Framework) negotiate no extension: a client offering permessage-deflate
    gets plain frames, and every message is a text frame of JSON."""
    sim = make_simulator(now=FROZEN_NOW)
    point = sim.plant.points[0]

    async def run() -> tuple[str | None, str | bytes]:
        url = _channel_url(sim, [point.web_id], includeInitialValues="true")
        async with websockets.connect(url, compression="deflate") as ws:
            return ws.response.headers.get("Sec-WebSocket-Extensions"), await asyncio.wait_for(ws.recv(), 10)

    extensions, message = asyncio.run(run())
    assert extensions is None
    assert isinstance(message, str)
    assert [s["WebId"] for s in orjson.loads(message)["Items"]] == [point.web_id]
