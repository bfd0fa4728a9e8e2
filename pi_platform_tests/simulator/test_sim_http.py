"""REST endpoints over a real socket: swagger shapes, ground truth equality, paging, limits, WebID handling."""

from datetime import datetime

import pytest

from pi_platform import webid
from pi_platform_tests.simulator.support import DAY, items_to_table


def _walk(http):
    server = http.get("assetservers").json()["Items"][0]
    database = http.get(server["Links"]["Databases"]).json()["Items"][0]
    data_server = http.get("dataservers").json()["Items"][0]
    return server, database, data_server


def test_catalog_endpoints_match_swagger(http, validate, frozen):
    validate(http.get("").json(), "Landing")
    validate(http.get("system").json(), "SystemLanding")
    validate(http.get("system/status").json(), "SystemStatus")
    body = http.get("assetservers").json()
    validate(body, "Items[AssetServer]")
    server, database, data_server = _walk(http)
    validate(http.get(server["Links"]["Databases"]).json(), "Items[AssetDatabase]")
    elements = http.get(database["Links"]["Elements"], params={"searchFullHierarchy": "true"}).json()
    validate(elements, "Items[Element]")
    pump = next(e for e in elements["Items"] if e["TemplateName"] == "Pump")
    attributes = http.get(pump["Links"]["Attributes"], params={"associations": "DataReference"}).json()
    validate(attributes, "Items[Attribute]")
    validate(http.get(attributes["Items"][0]["Links"]["Self"]).json(), "Attribute")
    validate(http.get("dataservers").json(), "Items[DataServer]")
    points = http.get(data_server["Links"]["Points"]).json()
    validate(points, "Items[Point]")
    validate(http.get(points["Items"][0]["Links"]["Self"]).json(), "Point")
    validate(http.get(points["Items"][0]["Links"]["Attributes"]).json(), "Items[PointAttribute]")
    sets = http.get(data_server["Links"]["EnumerationSets"]).json()
    validate(sets, "Items[EnumerationSet]")
    modes = next(s for s in sets["Items"] if s["Name"] == "Modes")
    values = http.get(modes["Links"]["Values"]).json()
    validate(values, "Items[EnumerationValue]")
    assert [(v["Name"], v["Value"]) for v in values["Items"]] == [("Stopped", 0), ("Running", 1), ("Tripped", 2)]


def test_stream_endpoints_match_swagger(http, validate, frozen):
    web_ids = [p.web_id for p in frozen.plant.points[:5]]
    one = web_ids[0]
    validate(
        http.get(f"streams/{one}/recorded", params={"startTime": DAY[0], "endTime": DAY[1]}).json(),
        "ExtendedTimedValues",
    )
    validate(http.get(f"streams/{one}/value").json(), "TimedValue")
    validate(http.get(f"streams/{one}/end").json(), "TimedValue")
    validate(
        http.get(
            f"streams/{one}/interpolated", params={"startTime": DAY[0], "endTime": DAY[1], "interval": "1h"}
        ).json(),
        "TimedValues",
    )
    summary = http.get(
        f"streams/{web_ids[1]}/summary",
        params=[("summaryType", "Average"), ("summaryType", "Maximum"), ("startTime", DAY[0]), ("endTime", DAY[1])],
    ).json()
    validate(summary, "Items[SummaryValue]")
    assert [i["Type"] for i in summary["Items"]] == ["Average", "Maximum"]
    params = [("webId", w) for w in web_ids] + [("startTime", DAY[0]), ("endTime", DAY[1])]
    validate(http.get("streamsets/recorded", params=params).json(), "Items[StreamValues]")
    validate(http.get("streamsets/end", params=params).json(), "Items[StreamValues]")
    validate(http.get("streamsets/value", params=params).json(), "Items[StreamValue]")


def test_recorded_over_http_equals_ground_truth(http, frozen):
    plant = frozen.plant
    for point in plant.points:
        body = http.get(
            f"streams/{point.web_id}/recorded", params={"startTime": DAY[0], "endTime": DAY[1], "maxCount": 150000}
        ).json()
        got = items_to_table(body["Items"], point.web_id, point.name, body["UnitsAbbreviation"])
        want = plant.recorded(point.web_id, datetime.fromisoformat(DAY[0]), datetime.fromisoformat(DAY[1]))
        assert got.equals(want), point.name


def test_streamsets_recorded_equals_ground_truth_per_stream(http, frozen):
    plant = frozen.plant
    points = plant.points[:8]
    params = [("webId", p.web_id) for p in points] + [("startTime", DAY[0]), ("endTime", DAY[1]), ("maxCount", "5000")]
    body = http.get("streamsets/recorded", params=params).json()
    assert [s["WebId"] for s in body["Items"]] == [p.web_id for p in points]
    for point, stream in zip(points, body["Items"]):
        got = items_to_table(stream["Items"], point.web_id, stream["Name"], stream["UnitsAbbreviation"])
        assert got.equals(plant.recorded(point.web_id, DAY[0], DAY[1]))


def test_attribute_stream_is_its_point_stream(http, frozen):
    plant = frozen.plant
    attribute = next(a for a in plant.attributes if a.point is not None)
    body = http.get(
        f"streams/{attribute.web_id}/recorded", params={"startTime": DAY[0], "endTime": DAY[1], "maxCount": 5000}
    ).json()
    by_point = http.get(
        f"streams/{attribute.point.web_id}/recorded", params={"startTime": DAY[0], "endTime": DAY[1], "maxCount": 5000}
    ).json()
    assert body["Items"] == by_point["Items"] and len(body["Items"]) > 1000
    static = next(a for a in plant.attributes if a.point is None)
    assert http.get(f"streams/{static.web_id}/recorded").status_code == 409


def test_max_count_default_truncates_silently_and_cap_gives_400(http, frozen):
    dense = frozen.plant.catalog.point_by_name("EDGE.Dense")
    body = http.get(f"streams/{dense.web_id}/recorded", params={"startTime": DAY[0], "endTime": DAY[1]}).json()
    assert len(body["Items"]) == 1000 and "Links" in body
    truth = frozen.plant.recorded(dense.web_id, DAY[0], DAY[1]).slice(0, 1000)
    assert items_to_table(body["Items"], dense.web_id, dense.name, "").equals(truth)
    too_many = http.get(f"streams/{dense.web_id}/recorded", params={"maxCount": 150001})
    assert too_many.status_code == 400
    assert too_many.json() == {"Errors": ["Parameter maxCount is greater than the maximum allowed (150000)."]}


def test_descending_when_end_before_start(http, frozen):
    point = frozen.plant.points[0]
    body = http.get(
        f"streams/{point.web_id}/recorded", params={"startTime": DAY[1], "endTime": DAY[0], "maxCount": 10}
    ).json()
    stamps = [i["Timestamp"] for i in body["Items"]]
    assert len(stamps) == 10 and stamps == sorted(stamps, reverse=True)
    truth = frozen.plant.recorded(point.web_id, DAY[0], DAY[1])
    assert datetime.fromisoformat(stamps[0].replace("Z", "+00:00")) == truth["timestamp"][-1].as_py()


def test_outside_boundary_adds_one_value_each_side(http, frozen):
    point = frozen.plant.points[1]
    inside = http.get(
        f"streams/{point.web_id}/recorded", params={"startTime": DAY[0], "endTime": DAY[1], "maxCount": 5000}
    ).json()
    outside = http.get(
        f"streams/{point.web_id}/recorded",
        params={"startTime": DAY[0], "endTime": DAY[1], "maxCount": 5000, "boundaryType": "Outside"},
    ).json()
    assert outside["Items"][1:-1] == inside["Items"]
    assert outside["Items"][0]["Timestamp"] < DAY[0] and outside["Items"][-1]["Timestamp"] > DAY[1]


def test_element_and_point_paging_has_no_gaps_or_doubles(make_simulator):
    import httpx

    sim = make_simulator(n_tags=230)
    with httpx.Client(base_url=sim.base_url + "/") as http:
        server, database, data_server = _walk(http)
        everything = http.get(
            database["Links"]["Elements"], params={"searchFullHierarchy": "true", "maxCount": 10000}
        ).json()
        assert len(everything["Items"]) == len(sim.plant.elements)
        paged = []
        for start in range(0, 1000, 7):
            page = http.get(
                database["Links"]["Elements"],
                params={"searchFullHierarchy": "true", "startIndex": start, "maxCount": 7},
            ).json()["Items"]
            paged += page
            if len(page) < 7:
                break
        assert [e["WebId"] for e in paged] == [e["WebId"] for e in everything["Items"]]
        pumps = http.get(
            database["Links"]["Elements"], params={"searchFullHierarchy": "true", "templateName": "Pump"}
        ).json()
        assert pumps["Items"] and {e["TemplateName"] for e in pumps["Items"]} == {"Pump"}
        named = http.get(
            database["Links"]["Elements"], params={"searchFullHierarchy": "true", "nameFilter": "Tank0000*"}
        ).json()
        assert sorted(e["Name"] for e in named["Items"]) == sorted(
            e.name for e in sim.plant.elements if e.name.startswith("Tank0000")
        )
        sites = http.get(database["Links"]["Elements"]).json()["Items"]
        assert [s["Name"] for s in sites] == [e.name for e in sim.plant.catalog.roots]
        points = []
        for start in range(0, 1000, 50):
            page = http.get(data_server["Links"]["Points"], params={"startIndex": start, "maxCount": 50}).json()[
                "Items"
            ]
            points += page
            if len(page) < 50:
                break
        assert sorted(p["Name"] for p in points) == sorted(p.name for p in sim.plant.points)
        assert len({p["WebId"] for p in points}) == len(sim.plant.points)
        flows = http.get(data_server["Links"]["Points"], params={"nameFilter": "*.Flow"}).json()["Items"]
        assert {p["Name"] for p in flows} == {p.name for p in sim.plant.points if p.name.endswith(".Flow")}


def test_digital_and_system_state_shapes(http, frozen):
    point = frozen.plant.catalog.point_by_name("EDGE.DigitalSystem")
    items = http.get(
        f"streams/{point.web_id}/recorded", params={"startTime": DAY[0], "endTime": DAY[1], "maxCount": 5000}
    ).json()["Items"]
    digital = next(i for i in items if not i["Value"]["IsSystem"])
    system = next(i for i in items if i["Value"]["IsSystem"])
    assert set(digital["Value"]) == {"Name", "Value", "IsSystem"} and digital["Good"] is True
    assert digital["Value"]["Name"] in ("Stopped", "Running", "Tripped")
    assert system["Good"] is False and (system["Value"]["Name"], system["Value"]["Value"]) in {
        ("Shutdown", 254),
        ("I/O Timeout", 246),
        ("Bad Input", 255),
    }
    text = frozen.plant.catalog.point_by_name("Tank00003.LastSample")
    strings = http.get(f"streams/{text.web_id}/recorded", params={"startTime": DAY[0], "endTime": DAY[1]}).json()[
        "Items"
    ]
    assert any(isinstance(i["Value"], str) for i in strings)


def test_webid_forms_and_errors(http, frozen):
    point = frozen.plant.points[2]
    path_only = webid.point_path_webid(frozen.plant.data_server_name, point.name.lower())
    decoded = webid.decode(point.web_id)
    id_only = (
        "I1DP" + webid.b64_encode(decoded.ids[0].bytes_le) + webid.b64_encode(decoded.point_id.to_bytes(4, "little"))
    )
    for form in (point.web_id, path_only, id_only):
        body = http.get(f"points/{form}").json()
        assert body["Name"] == point.name and body["WebId"] == point.web_id
    assert http.get(f"points/{point.web_id}", params={"webIdType": "PathOnly"}).json()[
        "WebId"
    ] == webid.point_path_webid(frozen.plant.data_server_name, point.name)
    assert http.get(f"points/{point.web_id}", params={"webIdType": "IDOnly"}).json()["WebId"] == id_only
    bad = http.get("streams/F1RDbogus/recorded")
    assert bad.status_code == 400 and bad.json() == {"Errors": ["Unknown or invalid WebID format: 'F1RDbogus'."]}
    missing = webid.point_path_webid(frozen.plant.data_server_name, "NO.SUCH.TAG")
    assert http.get(f"streams/{missing}/recorded").status_code == 404
    by_path = http.get("points", params={"path": f"\\\\{frozen.plant.data_server_name}\\{point.name}"}).json()
    assert by_path["WebId"] == point.web_id
    element = frozen.plant.elements[-1]
    assert http.get("elements", params={"path": element.path}).json()["WebId"] == element.web_id
    assert http.get(f"points/{element.web_id}").status_code == 400


@pytest.mark.parametrize("summary_type", ["Count", "Minimum", "Maximum"])
def test_summary_matches_ground_truth(http, frozen, summary_type):
    point = frozen.plant.points[0]
    body = http.get(
        f"streams/{point.web_id}/summary",
        params={
            "summaryType": summary_type,
            "startTime": DAY[0],
            "endTime": DAY[1],
            "calculationBasis": "EventWeighted",
        },
    ).json()
    truth = frozen.plant.recorded(point.web_id, DAY[0], DAY[1])
    good = truth.filter(truth["good"])
    expected = {
        "Count": good.num_rows,
        "Minimum": min(good["value"].to_pylist()),
        "Maximum": max(good["value"].to_pylist()),
    }
    assert body["Items"][0]["Value"]["Value"] == pytest.approx(expected[summary_type])


def test_interpolated_is_between_neighbours(http, frozen):
    point = frozen.plant.points[1]  # Float64, linear
    body = http.get(
        f"streams/{point.web_id}/interpolated", params={"startTime": DAY[0], "endTime": DAY[1], "interval": "1h"}
    ).json()["Items"]
    assert len(body) == 25
    truth = frozen.plant.recorded(point.web_id, "2024-04-30T23:00:00Z", DAY[1]).to_pylist()
    at = datetime.fromisoformat(body[5]["Timestamp"].replace("Z", "+00:00"))
    before = [r for r in truth if r["timestamp"] <= at][-1]
    after = next(r for r in truth if r["timestamp"] > at)
    if before["good"] and after["good"]:
        low, high = sorted([before["value"], after["value"]])
        assert low <= body[5]["Value"] <= high


def test_unknown_route_and_method(http):
    assert http.get("nothing/here").status_code == 404
    assert http.delete("system", headers={"X-Requested-With": "x"}).status_code == 405


def test_annotations_association_on_annotated_values(http, frozen, validate):
    plant = frozen.plant
    point = next(p for p in plant.points if sum(plant.recorded(p.web_id, DAY[0], DAY[1])["annotated"].to_pylist()))
    params = {"startTime": DAY[0], "endTime": DAY[1], "maxCount": 150000}
    plain = http.get(f"streams/{point.web_id}/recorded", params=params).json()
    rich = http.get(f"streams/{point.web_id}/recorded", params={**params, "associations": "Annotations"}).json()
    validate(rich, "ExtendedTimedValues")
    annotated = [i for i in rich["Items"] if i["Annotated"]]
    assert annotated and all(i["Annotations"][0]["Value"].startswith("Operator comment") for i in annotated)
    assert all("Annotations" not in i for i in plain["Items"])
    assert [{k: v for k, v in i.items() if k != "Annotations"} for i in rich["Items"]] == plain["Items"]


def test_points_search_by_tag_query(http, frozen):
    server = frozen.plant.catalog.data_server_web_id
    found = http.get("points/search", params={"dataServerWebId": server, "query": "Tag:=Pump*.Flow"}).json()["Items"]
    assert sorted(p["Name"] for p in found) == sorted(
        p.name for p in frozen.plant.points if p.name.startswith("Pump") and p.name.endswith(".Flow")
    )
    assert http.get("points/search", params={"query": "Tag:=*", "maxCount": 1001}).status_code == 400
