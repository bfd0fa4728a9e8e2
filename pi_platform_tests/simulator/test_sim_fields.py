"""selectedFields on every route (one filter at the response layer, plus the fast value renderer) and webIdType
in all five forms, over a real socket."""

import re
from datetime import datetime

import orjson
import pyarrow as pa
import pytest

from pi_platform import webid
from pi_platform.client.columns import StreamPage, build_batch
from pi_platform.client.recorded import RECORDED_FIELDS
from pi_platform.pitime import format_time
from pi_platform.value_columns import sort_values
from pi_platform_tests.simulator.support import DAY


def _keep(document, names):
    """Reference filter for one level of dotted names (the test's own, independent of simulator.fields)."""
    return {k: v for k, v in document.items() if k in names}


def test_recorded_value_fields_are_rendered_alone(http, frozen):
    point = frozen.plant.catalog.point_by_name("Pump00001.Flow")
    params = {"startTime": DAY[0], "endTime": DAY[1], "maxCount": 300}
    full = http.get(f"streams/{point.web_id}/recorded", params=params).json()
    chosen = http.get(
        f"streams/{point.web_id}/recorded", params={**params, "selectedFields": "Items.Timestamp;items.value;Bogus.X"}
    ).json()
    assert set(chosen) == {"Items"}  # Links and UnitsAbbreviation dropped, unknown names ignored
    assert chosen["Items"] == [_keep(i, ("Timestamp", "Value")) for i in full["Items"]] and len(full["Items"]) == 300
    flags = http.get(
        f"streams/{point.web_id}/recorded", params={**params, "selectedFields": "Items.Good;Items.Annotated;UnitsAbbreviation"}
    ).json()
    assert flags == {
        "Items": [_keep(i, ("Good", "Annotated")) for i in full["Items"]],
        "UnitsAbbreviation": full["UnitsAbbreviation"],
    }


def test_streamset_selection_and_generic_routes(http, frozen):
    plant = frozen.plant
    web_ids = [p.web_id for p in plant.points[:3]]
    params = [("webId", w) for w in web_ids] + [("startTime", DAY[0]), ("endTime", DAY[1]), ("maxCount", "50")]
    full = http.get("streamsets/recorded", params=params).json()
    chosen = http.get("streamsets/recorded", params=params + [("selectedFields", "Items.Name;Items.Items.Value")]).json()
    assert chosen == {
        "Items": [{"Name": s["Name"], "Items": [{"Value": v["Value"]} for v in s["Items"]]} for s in full["Items"]]
    }
    # A route without its own selection code (the router filters it): the point list.
    server = plant.catalog.data_server_web_id
    names = http.get(f"dataservers/{server}/points", params={"maxCount": 20, "selectedFields": "Items.Name"}).json()
    listed = http.get(f"dataservers/{server}/points", params={"maxCount": 20}).json()
    assert names == {"Items": [{"Name": p["Name"]} for p in listed["Items"]]}
    # A whole object under a path is kept; Links only when named.
    element = plant.catalog.roots[0]
    body = http.get(f"elements/{element.web_id}", params={"selectedFields": "Links.Self;Name"}).json()
    assert body == {"Name": element.name, "Links": {"Self": f"{frozen.base_url}/elements/{element.web_id}"}}
    value = http.get("streamsets/value", params=[("webId", web_ids[0]), ("selectedFields", "Items.Value")]).json()
    assert set(value["Items"][0]) == {"Value"} and "Timestamp" in value["Items"][0]["Value"]


def test_batch_sub_requests_honour_selected_fields(http, frozen):
    point = frozen.plant.points[0]
    body = {"a": {"Method": "GET", "Resource": f"{frozen.base_url}/points/{point.web_id}?selectedFields=Name;PointType"}}
    answer = http.post("batch", content=orjson.dumps(body), headers={"X-Requested-With": "x"}).json()
    assert answer["a"]["Content"] == {"Name": point.name, "PointType": point.point_type}


@pytest.mark.parametrize("kind", ["Full", "IDOnly", "PathOnly", "LocalIDOnly", "DefaultIDOnly"])
def test_every_webid_type_is_emitted_and_accepted(http, frozen, kind):
    plant = frozen.plant
    point = plant.points[4]
    element = plant.catalog.roots[0].children[0]
    attribute = next(e for e in plant.catalog.elements if e.attributes).attributes[0]
    for path, obj in (("points", point), ("elements", element), ("attributes", attribute)):
        emitted = http.get(f"{path}/{obj.web_id}", params={"webIdType": kind, "selectedFields": "WebId"}).json()["WebId"]
        assert emitted[0] == kind[0] and webid.decode(emitted).marker == webid.decode(obj.web_id).marker
        again = http.get(f"{path}/{emitted}").json()  # accepted as input, names the same object
        assert again["WebId"] == obj.web_id and again["Name"] == obj.name
    streams = http.get(
        "streamsets/value", params=[("webId", point.web_id), ("webIdType", kind), ("selectedFields", "Items.WebId")]
    ).json()
    assert streams["Items"][0]["WebId"] == webid.convert(point.web_id, kind)
    if kind in ("LocalIDOnly", "DefaultIDOnly"):  # the object's own id only: no server GUID, no path
        assert webid.decode(emitted).ids == webid.decode(attribute.web_id).ids[1:] and webid.decode(emitted).path is None
    assert http.get(f"points/{point.web_id}", params={"webIdType": "Bogus"}).status_code == 400


def test_timestamps_and_time_errors_as_the_server_writes_them(http, frozen):
    """Times as .NET prints `yyyy-MM-ddTHH:mm:ss.FFFFFFFZ` (no trailing zeros, none on whole seconds), equal to
    the ground truth; any PI time expression is accepted and a bad one is PI's 400 error body."""
    plant = frozen.plant
    stamps: list[str] = []
    for point in (plant.points[0], plant.points[4]):  # one tag on whole seconds, one with microseconds
        items = http.get(
            f"streams/{point.web_id}/recorded", params={"startTime": DAY[0], "endTime": DAY[1], "maxCount": 2000}
        ).json()["Items"]
        truth = plant.recorded(point.web_id, *(datetime.fromisoformat(d.replace("Z", "+00:00")) for d in DAY))
        assert [i["Timestamp"] for i in items] == [format_time(t) for t in truth["timestamp"].to_pylist()][: len(items)]
        stamps += [i["Timestamp"] for i in items]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", t) for t in stamps)
    fractions = [len(t.split(".")[1]) - 1 for t in stamps if "." in t]
    assert len(fractions) < len(stamps) and min(fractions) < 6  # whole seconds and trimmed zeros both occur
    relative = http.get(f"streams/{point.web_id}/recorded", params={"startTime": "wed+6h", "endTime": "y-1d+8h+1d"})
    assert relative.status_code == 200 and relative.json()["Items"]  # FROZEN_NOW is a Thursday
    bad = http.get(f"streams/{point.web_id}/recorded", params={"startTime": "*-1fortnight"})
    assert bad.status_code == 400 and list(bad.json()) == ["Errors"] and "*-1fortnight" in bad.json()["Errors"][0]


def test_client_selection_keeps_everything_it_stores(http, frozen):
    """The client's recorded reads ask for RECORDED_FIELDS: from the trimmed answer (fewer bytes) it builds
    exactly the table the full answer gives, units and flags included; the ground truth agrees."""
    plant = frozen.plant
    points = [plant.points[i] for i in (0, 3, 4, 7)] + [plant.catalog.point_by_name("EDGE.DigitalSystem")]
    params = [("webId", p.web_id) for p in points] + [("startTime", DAY[0]), ("endTime", DAY[1]), ("maxCount", "5000")]
    full = http.get("streamsets/recorded", params=params)
    trimmed = http.get("streamsets/recorded", params=params + [("selectedFields", RECORDED_FIELDS)])
    assert len(trimmed.content) < 0.9 * len(full.content)

    def table(reply):
        streams = reply.json()["Items"]
        pages = [StreamPage(s["WebId"], s["Name"], s["UnitsAbbreviation"], s["Items"]) for s in streams]
        return sort_values(build_batch(pages)[0].values)

    assert table(trimmed).equals(table(full))
    day = [datetime.fromisoformat(d.replace("Z", "+00:00")) for d in DAY]
    truth = pa.concat_tables([plant.recorded(p.web_id, *day) for p in points])
    assert table(trimmed).equals(sort_values(truth))
