"""Interface failures, stuck and deleted tags over real sockets, at run time (admin API) and scheduled in config.

Every check compares what REST and channels serve with the plant's ground truth and with the failure times
themselves (no values inside a window, I/O Timeout exactly at its start, values again after a restore).
"""

import asyncio
from datetime import datetime, timedelta

import httpx
import orjson
import pytest
import websockets

from pi_platform.errors import ConfigError
from pi_platform.pitime import format_time
from pi_platform.simulator.config import SimulatorConfig
from pi_platform.simulator.server import SimulatorServer
from pi_platform.value_columns import sort_values
from pi_platform_tests.simulator.support import FROZEN_NOW, items_to_table

IO_TIMEOUT = {"Name": "I/O Timeout", "Value": 246, "IsSystem": True}


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sim(make_simulator, **config):
    """250 tags: Area0001 and Area0002 with 100 tags each, Area0003 with 50; a third of them flat."""
    return make_simulator(now=FROZEN_NOW, n_tags=250, flat_fraction=0.3, channel_poll_interval_s=0.05, **config)


def _pick(plant, pointsource: str) -> list:
    """A continuous and a flat tag of the interface."""
    tags = plant.interfaces()[pointsource]
    return [next(t for t in tags if not t.flat and t.kind == "numeric"), next(t for t in tags if t.flat)]


def _recorded(http, tag, start: datetime, end: datetime):
    params = {"startTime": format_time(start), "endTime": format_time(end), "maxCount": 100_000}
    items = http.get(f"streams/{tag.web_id}/recorded", params=params).json()["Items"]
    return items_to_table(items, tag.web_id, tag.name, tag.units)


def _snapshots(http, tags) -> list[dict]:
    body = http.get("streamsets/value", params=[("webId", t.web_id) for t in tags]).json()
    return [s["Value"] for s in body["Items"]]


async def _drain(ws, messages: list[dict]) -> None:
    while True:
        try:
            messages.append(orjson.loads(await asyncio.wait_for(ws.recv(), 0.4)))
        except asyncio.TimeoutError:
            return


def _pushed(messages: list[dict], web_id: str) -> list[dict]:
    """A stream's channel items folded by (timestamp, position in the message): corrections replace values."""
    folded: dict[tuple[str, int], dict] = {}
    for stream in (s for m in messages for s in m["Items"] if s["WebId"] == web_id):
        seen: dict[str, int] = {}
        for item in stream["Items"]:
            position = seen[item["Timestamp"]] = seen.get(item["Timestamp"], -1) + 1
            folded[(item["Timestamp"], position)] = item
    return [folded[key] for key in sorted(folded)]


@pytest.mark.parametrize("mode", ["io_timeout", "silent"])
def test_interface_failure_and_restore(make_simulator, validate, mode):
    sim = _sim(make_simulator)
    plant = sim.plant
    down, alive = _pick(plant, "Area0001"), _pick(plant, "Area0002")
    # Off the 10-minute steps and off whole seconds, posted before the clock reaches them.
    failed_at, restored_at = (FROZEN_NOW + timedelta(minutes=m, milliseconds=500) for m in (15, 135))
    steps = [FROZEN_NOW + timedelta(minutes=10 * k) for k in range(1, 21)]
    end = steps[-1]
    seen: list[tuple[datetime, list[dict]]] = []

    async def run() -> list[dict]:
        url = f"{sim.ws_url}/streamsets/channel?" + "&".join(f"webId={t.web_id}" for t in [*down, *alive])
        messages: list[dict] = []
        async with websockets.connect(url) as ws, httpx.AsyncClient(base_url=sim.base_url + "/") as http:
            for at in steps:
                if at - timedelta(minutes=10) < failed_at < at:
                    fail = {"mode": mode, "at": format_time(failed_at)}
                    reply = await http.post(sim.admin_url + "/interfaces/Area0001/fail", json=fail)
                    assert reply.json()["failed"] is True
                    again = await http.post(sim.admin_url + "/interfaces/Area0001/fail", json=fail)
                    assert again.json()["failed"] is False  # already down
                if at - timedelta(minutes=10) < restored_at < at:
                    restore = {"at": format_time(restored_at)}
                    reply = await http.post(sim.admin_url + "/interfaces/Area0001/restore", json=restore)
                    assert reply.json()["restored"] is True
                await http.post(sim.admin_url + "/clock", json={"now": format_time(at)})
                query = [("webId", t.web_id) for t in [*down, *alive]]
                body = (await http.get("streamsets/value", params=query)).json()
                validate(body, "Items[StreamValue]")
                seen.append((at, [s["Value"] for s in body["Items"]]))
                await _drain(ws, messages)
        return messages

    messages = asyncio.run(run())
    assert [(f.kind, f.target, f.mode, f.start, f.end) for f in plant.failures()] == [
        ("interface", "Area0001", mode, failed_at, restored_at)
    ]
    interfaces = httpx.get(sim.admin_url + "/interfaces").json()["interfaces"]
    assert [i["pointsource"] for i in interfaces] == ["Area0001", "Area0002", "Area0003", "EDGE"]
    assert all(i["failure"] is None for i in interfaces)  # restored
    with httpx.Client(base_url=sim.base_url + "/") as http:
        for tag in [*down, *alive]:
            table = _recorded(http, tag, FROZEN_NOW, end)
            assert table.equals(plant.recorded(tag.web_id, FROZEN_NOW, end))
            stamps, states = table["timestamp"].to_pylist(), table["value_str"].to_pylist()
            inside = [(t, s) for t, s in zip(stamps, states) if failed_at <= t <= restored_at]
            if tag in alive:
                assert "I/O Timeout" not in states and (tag.flat or any(failed_at < t < restored_at for t in stamps))
                continue
            # I/O Timeout exactly at the failure, nothing during it, and a flat tag's level re-sent on restore.
            io_timeout = mode == "io_timeout"
            assert [t for t, _ in inside] == [failed_at] * io_timeout + [restored_at] * tag.flat, tag.name
            assert [s for _, s in inside][:1] == ["I/O Timeout"] * io_timeout or not io_timeout
            assert any(t > restored_at for t in stamps) or tag.flat
            pushed = items_to_table(_pushed(messages, tag.web_id), tag.web_id, tag.name, tag.units)
            assert sort_values(pushed).equals(plant.recorded(tag.web_id, FROZEN_NOW + timedelta(microseconds=1), end))
            if mode == "io_timeout":
                assert any(i["Value"] == IO_TIMEOUT and i["Good"] is False for i in _pushed(messages, tag.web_id))
    for at, values in seen:
        for tag, value in zip([*down, *alive], values):
            taken = _ts(value["Timestamp"])
            assert taken == plant.snapshot(tag.web_id, at)["timestamp"][0].as_py()
            if tag in down and failed_at <= at < restored_at:
                assert taken <= failed_at  # the snapshot stopped
                assert (value["Value"] == IO_TIMEOUT) == (mode == "io_timeout")
            else:
                assert at - taken <= timedelta(seconds=plant.compression(tag).excmax_s)


def test_stuck_tag_stops_while_its_interface_lives(make_simulator):
    sim = _sim(make_simulator)
    plant = sim.plant
    stuck, neighbour = _pick(plant, "Area0001")
    admin = httpx.Client(base_url=sim.admin_url)
    stuck_at = FROZEN_NOW
    assert admin.post("/streams/pause", json={"names": [stuck.name]}).json()["paused"] == [stuck.name]
    with httpx.Client(base_url=sim.base_url + "/") as http:
        before = _snapshots(http, [stuck])[0]
        for minutes in (30, 90, 150):
            at = FROZEN_NOW + timedelta(minutes=minutes)
            admin.post("/clock", json={"now": format_time(at)})
            frozen_value, moving = _snapshots(http, [stuck, neighbour])
            assert frozen_value == before and _ts(frozen_value["Timestamp"]) <= stuck_at
            assert at - _ts(moving["Timestamp"]) <= timedelta(seconds=600)
        assert _recorded(http, stuck, stuck_at + timedelta(microseconds=1), at).num_rows == 0
        assert _recorded(http, neighbour, stuck_at + timedelta(microseconds=1), at).num_rows > 0
    assert admin.get("/failures").json()["failures"] == [
        {"kind": "tag", "target": stuck.name, "mode": "silent", "at": format_time(stuck_at), "until": None}
    ]
    assert admin.post("/streams/pause", json={"names": [stuck.name], "mode": "sideways"}).status_code == 400
    unknown = admin.post("/interfaces/Area0099/fail", json={})
    assert unknown.status_code == 400 and "Area0099" in unknown.json()["error"]
    admin.close()


def test_deleted_tag_is_unknown_to_rest_and_leaves_channels(make_simulator):
    sim = _sim(make_simulator)
    plant = sim.plant
    gone, kept = [t for t in plant.interfaces()["Area0002"] if not t.flat and t.kind == "numeric"][:2]
    attribute = next(a for e in plant.elements for a in e.attributes if a.point is gone)
    deleted_at = FROZEN_NOW + timedelta(minutes=30)

    async def run() -> list[dict]:
        url = f"{sim.ws_url}/streamsets/channel?webId={gone.web_id}&webId={kept.web_id}"
        messages: list[dict] = []
        async with websockets.connect(url) as ws, httpx.AsyncClient() as admin:
            for minutes in (10, 30, 50, 70):
                if minutes == 30:
                    await admin.post(sim.admin_url + "/clock", json={"now": format_time(deleted_at)})
                    reply = await admin.post(sim.admin_url + "/tags/delete", json={"names": [gone.name]})
                    assert reply.json()["deleted"] == [gone.name]
                else:
                    at = FROZEN_NOW + timedelta(minutes=minutes)
                    await admin.post(sim.admin_url + "/clock", json={"now": format_time(at)})
                await _drain(ws, messages)
        return messages

    messages = asyncio.run(run())
    after = [i for i in _pushed(messages, gone.web_id) if _ts(i["Timestamp"]) > deleted_at]
    assert after == [] and _pushed(messages, gone.web_id)  # it streamed, then the channel dropped it
    assert any(_ts(i["Timestamp"]) > deleted_at for i in _pushed(messages, kept.web_id))
    missing = {"Errors": [f"The specified object was not found: '{gone.web_id}'."]}
    with httpx.Client(base_url=sim.base_url + "/") as http:
        assert http.get(f"points/{gone.web_id}").json() == missing
        for path in (f"points/{gone.web_id}", f"streams/{gone.web_id}/recorded", f"streams/{gone.web_id}/value",
                     f"points/{gone.web_id}/attributes", f"streams/{attribute.web_id}/value"):
            assert http.get(path).status_code == 404, path
        assert http.get("points", params={"path": gone.path}).status_code == 404
        assert http.get("streamsets/value", params=[("webId", kept.web_id), ("webId", gone.web_id)]).status_code == 404
        server = http.get("dataservers").json()["Items"][0]["WebId"]
        listed = http.get(f"dataservers/{server}/points", params={"maxCount": 1000}).json()["Items"]
        assert gone.name not in {p["Name"] for p in listed} and len(listed) == len(plant.points) - 1
        assert http.get(f"points/{kept.web_id}").status_code == 200

    async def reopen() -> int:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"{sim.ws_url}/streams/{gone.web_id}/channel"):
                pass
        return refused.value.response.status_code

    assert asyncio.run(reopen()) == 404
    truth = plant.recorded(gone.web_id, FROZEN_NOW, FROZEN_NOW + timedelta(hours=2))
    assert truth.num_rows and max(truth["timestamp"].to_pylist()) <= deleted_at
    assert httpx.post(sim.admin_url + "/tags/delete", json={"names": [gone.name]}).status_code == 400


def test_failures_scheduled_in_config_are_replayed_exactly(make_simulator):
    failures = [
        {"kind": "interface", "target": "Area0001", "mode": "io_timeout", "at": "*-6h", "until": "*-4h"},
        {"kind": "interface", "target": "Area0003", "at": "*-5h"},
        {"kind": "tag", "target": "Pump00025.Flow", "at": "*-3h", "until": "*-150m"},
        {"kind": "delete", "target": "Tank00027.Level", "at": "*-1h"},
    ]
    sim = _sim(make_simulator, failures=failures)
    plant = sim.plant
    hours = [FROZEN_NOW - timedelta(hours=h) for h in (6, 4, 5, 3, 2.5, 1)]
    assert [(f.kind, f.target, f.start, f.end) for f in plant.failures()] == [
        ("interface", "Area0001", hours[0], hours[1]),
        ("interface", "Area0003", hours[2], None),
        ("tag", "Pump00025.Flow", hours[3], hours[4]),
        ("delete", "Tank00027.Level", hours[5], None),
    ]
    start = FROZEN_NOW - timedelta(hours=8)
    with httpx.Client(base_url=sim.base_url + "/") as http:
        for failure in plant.failures():
            members = plant.interfaces()[failure.target] if failure.kind == "interface" else [
                plant.catalog.point_by_name(failure.target)]
            for tag in members[:: max(len(members) // 7, 1)]:
                if failure.kind == "delete":
                    assert http.get(f"streams/{tag.web_id}/recorded").status_code == 404
                    table = plant.recorded(tag.web_id, start, FROZEN_NOW)
                else:
                    table = _recorded(http, tag, start, FROZEN_NOW)
                    assert table.equals(plant.recorded(tag.web_id, start, FROZEN_NOW))
                rows = list(zip(table["timestamp"].to_pylist(), table["value_str"].to_pylist()))
                until = failure.end or FROZEN_NOW
                inside = [t for t, _ in rows if failure.start < t <= until]
                assert inside == [until] * (tag.flat and failure.end is not None), tag.name
                assert ((failure.start, "I/O Timeout") in rows) == (failure.mode == "io_timeout")
        dead = plant.interfaces()["Area0003"][0]
        snapshot = http.get(f"streams/{dead.web_id}/value").json()
        assert _ts(snapshot["Timestamp"]) <= hours[2] < FROZEN_NOW - timedelta(seconds=600)
    twin = SimulatorServer(SimulatorConfig(now=FROZEN_NOW, n_tags=250, flat_fraction=0.3, failures=failures)).plant
    tag = plant.interfaces()["Area0001"][3]
    assert twin.recorded(tag.web_id, start, FROZEN_NOW).equals(plant.recorded(tag.web_id, start, FROZEN_NOW))
    with pytest.raises(ConfigError, match="Area0099"):
        SimulatorServer(SimulatorConfig(n_tags=250, failures=[{"kind": "interface", "target": "Area0099", "at": "*"}]))
    with pytest.raises(ConfigError, match="kind"):
        SimulatorConfig(failures=[{"kind": "flood", "target": "Area0001", "at": "*"}])
