"""Search routes (elements, attributes, event frames by AF query; elementattributes), the event-frame search
modes, channels/instances — against the plant's catalog and frames, recomputed here."""

import asyncio
from datetime import timedelta

import httpx
import websockets

from pi_platform.pitime import format_time, from_us, to_us
from pi_platform_tests.simulator.support import FROZEN_NOW

DB_FIELDS = {"selectedFields": "Items.Path", "maxCount": 1000}


def _paths(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [i["Path"] for i in reply.json()["Items"]]


def _by_name(objects):
    return sorted(objects, key=lambda o: (o.name.upper(), o.path.upper()))


def test_element_and_attribute_search(http, frozen, validate):
    cat = frozen.plant.catalog
    db = cat.database_web_id
    body = http.get("elements/search", params={"databaseWebId": db, "query": "Name:'Pump*' Template:Pump"})
    validate(body.json(), "Items[Element]")
    expected = [e.path for e in _by_name(cat.elements) if e.name.startswith("Pump") and e.template == "Pump"]
    assert _paths(body) == expected and expected
    site = cat.roots[0]
    below = _paths(http.get("elements/search", params={"query": f"Root:'{site.path}' Template:<>Unit", **DB_FIELDS}))
    assert below == [e.path for e in _by_name(cat.elements) if e.path.startswith(site.path + "\\") and e.template != "Unit"]
    attrs = http.get("attributes/search", params={"databaseWebId": db, "query": "Element:{Template:Pump} Name:Fl*"})
    validate(attrs.json(), "Items[Attribute]")
    pumps = [e for e in _by_name(cat.elements) if e.template == "Pump"]
    assert _paths(attrs) == [a.path for e in pumps for a in e.attributes if a.name.startswith("Fl")]
    unknown = http.get("elements/search", params={"query": "Colour:red"})
    assert unknown.status_code == 400 and "Colour" in unknown.json()["Errors"][0]
    flat = http.get(
        f"assetdatabases/{db}/elementattributes",
        params={"searchFullHierarchy": "true", "elementTemplate": "Tank", "attributeNameFilter": "L*", **DB_FIELDS},
    )
    tanks = [e for e in _by_name(cat.elements) if e.template == "Tank"]
    assert _paths(flat) == [a.path for e in tanks for a in sorted(e.attributes, key=lambda a: a.name.upper())
                            if a.name.startswith("L")]
    children = _paths(http.get(f"elements/{site.web_id}/elementattributes", params=DB_FIELDS))
    assert children == [a.path for e in _by_name(site.children) for a in sorted(e.attributes, key=lambda a: a.name.upper())]


def test_event_frame_search_query(http, frozen):
    plant = frozen.plant
    now = FROZEN_NOW
    frames = plant.events.frames(now - timedelta(days=1), now, now=now)
    body = http.get("eventframes/search", params={"query": "Start:>=*-1d Severity:Critical", "maxCount": 1000})
    expected = sorted(
        (f.name for f in frames if f.severity == "Critical" and f.start_us >= to_us(now - timedelta(days=1))),
        key=str.upper,
    )
    assert [f["Name"] for f in body.json()["Items"]] == expected and expected


def _directional_truth(plant, t, mode, count):
    now_us = plant.clock.now_us()
    frames = plant.events.frames(t - timedelta(days=40), from_us(now_us), now=from_us(now_us))
    open_end = 253402300799000000

    def end(f):
        return open_end if f.is_open(now_us) else f.end_us

    t_us = to_us(t)
    key, keep = {
        "BackwardFromStartTime": (lambda f: f.start_us, lambda f: f.start_us <= t_us),
        "ForwardFromStartTime": (lambda f: f.start_us, lambda f: f.start_us >= t_us),
        "BackwardFromEndTime": (end, lambda f: end(f) <= t_us),
        "ForwardFromEndTime": (end, lambda f: end(f) >= t_us),
        "BackwardInProgress": (lambda f: f.start_us, lambda f: f.is_open(now_us) and f.start_us <= t_us),
        "ForwardInProgress": (lambda f: f.start_us, lambda f: f.is_open(now_us) and f.start_us >= t_us),
    }[mode]
    chosen = sorted((f for f in frames if keep(f)), key=lambda f: (key(f), f.name), reverse=mode.startswith("Backward"))
    return [f.name for f in chosen[:count]]


def test_event_frame_directional_search_modes(http, frozen, validate):
    plant = frozen.plant
    db = plant.catalog.database_web_id
    for t in (FROZEN_NOW - timedelta(hours=30), FROZEN_NOW - timedelta(hours=2)):
        for mode in ("BackwardFromStartTime", "ForwardFromStartTime", "BackwardFromEndTime", "ForwardFromEndTime",
                     "BackwardInProgress", "ForwardInProgress"):
            reply = http.get(
                f"assetdatabases/{db}/eventframes", params={"searchMode": mode, "startTime": format_time(t), "maxCount": 25}
            )
            validate(reply.json(), "Items[EventFrame]")
            assert [f["Name"] for f in reply.json()["Items"]] == _directional_truth(plant, t, mode, 25), (t, mode)
    refused = http.get(f"assetdatabases/{db}/eventframes", params={"searchMode": "BackwardFromEndTime", "sortOrder": "Descending"})
    assert refused.status_code == 400
    # Paging continues the same search order.
    t = format_time(FROZEN_NOW - timedelta(hours=30))
    page = http.get(
        f"assetdatabases/{db}/eventframes",
        params={"searchMode": "ForwardFromStartTime", "startTime": t, "startIndex": 10, "maxCount": 5},
    ).json()
    assert [f["Name"] for f in page["Items"]] == _directional_truth(plant, FROZEN_NOW - timedelta(hours=30),
                                                                   "ForwardFromStartTime", 15)[10:]


def test_channel_instances_lists_open_channels(frozen, validate):
    point = frozen.plant.points[0]

    async def scenario() -> tuple[dict, dict]:
        url = f"{frozen.ws_url}/streamsets/channel?webId={point.web_id}&includeInitialValues=true"
        async with httpx.AsyncClient(base_url=frozen.base_url + "/", timeout=30) as client:
            async with websockets.connect(url) as ws:
                await asyncio.wait_for(ws.recv(), 30)
                during = (await client.get("channels/instances")).json()
            for _ in range(200):  # the server notices the close on its next poll
                after = (await client.get("channels/instances")).json()
                if not after["Items"]:
                    break
                await asyncio.sleep(0.1)
        return during, after

    during, after = asyncio.run(scenario())
    validate(during, "Items[ChannelInstance]")
    assert len(during["Items"]) == 1 and during["Items"][0]["SentMessageCount"] >= 1
    assert during["Items"][0]["StartTime"] == format_time(FROZEN_NOW)
    assert after["Items"] == []
