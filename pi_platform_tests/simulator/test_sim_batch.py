"""POST batch: 207, ParentIds ordering, JsonPath Parameters, RequestTemplate fan-out, 409 below failures."""

from datetime import timedelta

import httpx
import pytest

from pi_platform.pitime import format_time

HEADERS = {"X-Requested-With": "XMLHttpRequest"}


@pytest.fixture
def post(simulator):
    client = httpx.Client(base_url=simulator.base_url + "/", headers=HEADERS)
    yield lambda body: client.post("batch", json=body)
    client.close()


def test_parameters_parent_ids_and_template(post, simulator, validate):
    base = simulator.base_url
    response = post(
        {
            "points": {
                "Method": "GET",
                "Resource": f"{base}/dataservers/{{0}}/points?maxCount=4",
                "Parameters": ["$.server.Content.Items[0].WebId"],
                "ParentIds": ["server"],
            },
            "server": {"Method": "GET", "Resource": f"{base}/dataservers"},
            "ends": {
                "Method": "GET",
                "RequestTemplate": {"Resource": f"{base}/streams/{{0}}/end"},
                "Parameters": ["$.points.Content.Items[*].WebId"],
                "ParentIds": ["points"],
            },
            "self": {"Method": "GET", "Resource": "$.server.Content.Items[0].Links.Self", "ParentIds": ["server"]},
        }
    )
    assert response.status_code == 207
    body = response.json()
    assert list(body) == ["points", "server", "ends", "self"]
    for value in body.values():
        validate(value, "Response")
    assert body["server"]["Status"] == 200 and body["points"]["Status"] == 200
    names = [p["Name"] for p in body["points"]["Content"]["Items"]]
    assert len(names) == 4
    ends = body["ends"]
    assert ends["Status"] == 207 and ends["Content"]["Total"] == 4
    assert all(i["Status"] == 200 and "Timestamp" in i["Content"] for i in ends["Content"]["Items"])
    assert body["self"]["Content"]["Name"] == "PISIM"


def test_failed_parent_gives_409_and_empty_selection_400(post, simulator):
    body = post(
        {
            "bad": {"Method": "GET", "Resource": "streams/F1DPbogus/end"},
            "child": {"Method": "GET", "Resource": "system", "ParentIds": ["bad"]},
            "grandchild": {"Method": "GET", "Resource": "system", "ParentIds": ["child"]},
            "ok": {"Method": "GET", "Resource": "system/status"},
            "nothing": {
                "Method": "GET",
                "Resource": "points/{0}",
                "Parameters": ["$.ok.Content.Items[*].WebId"],
                "ParentIds": ["ok"],
            },
        }
    ).json()
    assert body["bad"]["Status"] == 400
    assert body["bad"]["Content"] == {"Errors": ["Unknown or invalid WebID format: 'F1DPbogus'."]}
    assert body["child"]["Status"] == 409 and body["grandchild"]["Status"] == 409
    assert body["ok"]["Status"] == 200
    assert body["nothing"]["Status"] == 400
    assert body["nothing"]["Content"] == {"Errors": ["Some JSON paths did not select any tokens."]}


def test_batch_recorded_equals_direct_request(post, simulator):
    point = simulator.plant.points[3]
    now = simulator.plant.now()
    query = (
        f"streams/{point.web_id}/recorded?startTime={format_time(now - timedelta(hours=2))}"
        f"&endTime={format_time(now - timedelta(hours=1))}"
    )
    body = post({"1": {"Method": "GET", "Resource": f"{simulator.base_url}/{query}"}}).json()
    direct = httpx.get(f"{simulator.base_url}/{query}").json()
    assert body["1"]["Content"]["Items"] == direct["Items"] and direct["Items"]


def test_malformed_batch_body(simulator):
    response = httpx.post(simulator.base_url + "/batch", content=b"[1,2", headers=HEADERS)
    assert response.status_code == 400 and response.json()["Errors"]
