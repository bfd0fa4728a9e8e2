"""The simulator's Stream Updates answer in the 2018 SP1 swagger's shapes (StreamUpdatesRegister,
StreamUpdatesRetrieve, DataPipeEvent), report an edit with PI's action and the value PI then holds (ground
truth), and forget markers the way a restarted server does; the client turns that into changes and `lost`."""

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig

NOW = datetime(2024, 11, 4, 12, 0, tzinfo=timezone.utc)
SWAGGER = json.loads((Path(__file__).parents[1] / "simulator" / "swagger_definitions.json").read_text())["definitions"]


def fields(definition: str) -> set[str]:
    return set(SWAGGER[definition]["properties"])


def test_register_and_retrieve_have_the_swagger_shapes_and_report_each_edit(make_simulator):
    simulator = make_simulator(n_tags=4, now=NOW, edge_tags=False)
    plant = simulator.plant
    point = next(p for p in plant.points if p.point_type.startswith("Float"))
    with httpx.Client(base_url=simulator.base_url, headers={"X-Requested-With": "test"}, timeout=30) as pi:
        registered = pi.post("streamsets/updates", params=[("webId", point.web_id), ("webId", "nonsense")])
        assert registered.status_code == 207  # one stream refused: a partial result
        good, bad = registered.json()["Items"]
        assert set(good) <= fields("StreamUpdatesRegister") and set(bad) <= fields("StreamUpdatesRegister")
        assert good["Status"] == "Succeeded" and good["SourceName"] == point.name and good["LatestMarker"]
        assert bad["Status"] == "Failed" and bad["Exception"]["Errors"]

        day = plant.recorded(point.web_id, NOW - timedelta(days=3), NOW - timedelta(days=3) + timedelta(hours=1))
        replaced, removed = day["timestamp"][0].as_py(), day["timestamp"][1].as_py()
        plant.edit(point.name, replaced, 42.25)
        plant.edit(point.name, removed, None)
        answer = pi.get(f"streams/updates/{good['LatestMarker']}")
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) <= fields("StreamUpdatesRetrieve") and body["RequestedMarker"] == good["LatestMarker"]
        assert all(set(event) <= fields("DataPipeEvent") for event in body["Events"])
        assert [(e["Action"], e["Timestamp"], e["Value"], e["Substituted"]) for e in body["Events"]] == [
            ("Update", replaced.strftime("%Y-%m-%dT%H:%M:%SZ"), 42.25, True),
            ("Delete", removed.strftime("%Y-%m-%dT%H:%M:%SZ"), day["value"][1].as_py(), True),
        ]
        after = plant.recorded(point.web_id, replaced, removed)
        assert after["timestamp"].to_pylist() == [replaced] and after["value"].to_pylist() == [42.25]

        again = pi.get(f"streams/updates/{body['LatestMarker']}").json()
        assert again["Events"] == []  # each marker reports what happened after it, once
        unknown = pi.get("streams/updates/0cbbec466f3a42288c8c47112f54b852_12")
        assert unknown.status_code == 404 and "register" in unknown.json()["Errors"][0]

    async def through_client():
        async with PIWebAPIClient(PIWebAPIConfig(url=simulator.base_url)) as client:
            registered = await client.register_updates([point.web_id])
            plant.edit(point.name, NOW - timedelta(days=2), 7.0)  # nothing stood there: an insert
            polled = await client.poll_updates({**registered.markers, "other": "forgotten-marker"})
            return registered, polled

    registered, polled = asyncio.run(through_client())
    assert list(registered.markers) == [point.web_id] and not registered.errors
    assert polled.changes.to_pylist() == [{"web_id": point.web_id, "timestamp": NOW - timedelta(days=2), "action": "Add"}]
    assert polled.lost == ["other"] and polled.markers[point.web_id] != registered.markers[point.web_id]
