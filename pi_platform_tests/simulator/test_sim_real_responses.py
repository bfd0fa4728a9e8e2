"""Simulator answers against documented real PI Web API responses (../shared/reference/piwebapi-protocol.md),
copied here so the suite runs from a fresh clone: same fields in the same order, same JSON types, times written
the same way. The simulator README's endpoint table names which routes this covers."""

import asyncio
import re

import orjson
import websockets

# Real capture of a streamsets/channel message (a production PI client's docstring, 2022) [reference S11];
# streamsets/recorded, /plot, /interpolated... answer the same Items[StreamValues] envelope.
CHANNEL_CAPTURE = {
    "Links": {},
    "Items": [
        {
            "WebId": "F1DPEmoryo_bV0GzilxLXH31pgLAcAAAQUJDX1BJX09QU1xUSTE0MDEzLlBW",
            "Name": "TI14013.PV",
            "Path": "\\\\ABC_PI_Ops\\TI14013.PV",
            "Links": {},
            "Items": [
                {
                    "Timestamp": "2022-12-09T14:06:38.4350128Z",
                    "Value": 73.68963,
                    "UnitsAbbreviation": "",
                    "Good": True,
                    "Questionable": False,
                    "Substituted": False,
                    "Annotated": False,
                }
            ],
            "UnitsAbbreviation": "",
        }
    ],
}
# A system state as a real server returns it (kukur's test fixture) [reference S19].
SYSTEM_STATE_CAPTURE = {"Name": "Shutdown", "Value": 254, "IsSystem": True}
# Vendor sample of GET eventframes/{webId} [reference S29], field order as documented.
EVENT_FRAME_SAMPLE_FIELDS = [
    "WebId", "Id", "Name", "Description", "Path", "TemplateName", "HasChildren", "CategoryNames", "ExtendedProperties",
    "StartTime", "EndTime", "Severity", "AcknowledgedBy", "AcknowledgedDate", "CanBeAcknowledged", "IsAcknowledged",
    "IsAnnotated", "IsLocked", "AreValuesCaptured", "RefElementWebIds", "Links",
]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$")


def shape(node: object) -> object:
    """Field names in order and JSON types, recursively (lists by their first item); times as 'time'."""
    if isinstance(node, dict):
        return [(k, shape(v)) for k, v in node.items()]
    if isinstance(node, list):
        return ["list", shape(node[0]) if node else None]
    if isinstance(node, str):
        return "time" if TIME.match(node) else "str"
    if isinstance(node, bool):
        return "bool"
    return "number" if isinstance(node, (int, float)) else type(node).__name__


def test_streamsets_and_channels_answer_like_the_real_capture(http, frozen):
    # A float tag whose current value is a number, so the channel's initial message holds one like the capture.
    point = next(
        p
        for p in frozen.plant.points
        if p.point_type.startswith("Float") and isinstance(http.get(f"streams/{p.web_id}/value").json()["Value"], float)
    )
    recorded = http.get(
        "streamsets/recorded", params={"webId": point.web_id, "startTime": "*-1h", "endTime": "*", "maxCount": 1000}
    ).json()
    recorded["Items"][0]["Items"] = [v for v in recorded["Items"][0]["Items"] if isinstance(v["Value"], float)][:1]
    assert shape(recorded) == shape(CHANNEL_CAPTURE)

    async def first_message() -> dict:
        url = f"{frozen.ws_url}/streamsets/channel?webId={point.web_id}&includeInitialValues=true"
        async with websockets.connect(url) as ws:
            return orjson.loads(await asyncio.wait_for(ws.recv(), 30))

    message = asyncio.run(first_message())
    message["Items"][0]["Items"] = message["Items"][0]["Items"][-1:]
    assert shape(message) == shape(CHANNEL_CAPTURE)


def test_system_states_and_event_frames_answer_like_documented_samples(http, frozen):
    point = frozen.plant.catalog.point_by_name("EDGE.DigitalSystem")
    items = http.get(f"streams/{point.web_id}/recorded", params={"startTime": "y", "endTime": "t"}).json()["Items"]
    system = next(i for i in items if isinstance(i["Value"], dict) and i["Value"]["IsSystem"])
    assert shape(system["Value"]) == shape(SYSTEM_STATE_CAPTURE) and system["Good"] is False
    frames = http.get(
        f"assetdatabases/{frozen.plant.catalog.database_web_id}/eventframes", params={"startTime": "*-1d"}
    ).json()["Items"]
    closed = next(f for f in frames if not f["EndTime"].startswith("9999"))
    assert list(closed) == EVENT_FRAME_SAMPLE_FIELDS
    assert TIME.match(closed["StartTime"]) and TIME.match(closed["EndTime"]) and closed["WebId"].startswith("F1Fm")
    assert re.fullmatch(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}", closed["Id"])
