"""Event frames (alarms): search modes and filters over HTTP equal the plant's ground truth."""

from datetime import datetime, timezone

import pytest

from pi_platform_tests.simulator.support import FROZEN_NOW

WINDOW = {"startTime": "2024-05-01T00:00:00Z", "endTime": "2024-05-02T00:00:00Z"}


@pytest.fixture
def frames_url(http):
    server = http.get("assetservers").json()["Items"][0]
    database = http.get(server["Links"]["Databases"]).json()["Items"][0]
    return database["Links"]["EventFrames"]


def _names(http, url, **params):
    body = http.get(url, params={"maxCount": 10000, **params}).json()
    return sorted(f["Name"] for f in body["Items"])


def test_overlapped_search_equals_ground_truth(http, frames_url, frozen, validate):
    body = http.get(frames_url, params={**WINDOW, "maxCount": 10000}).json()
    validate(body, "Items[EventFrame]")
    truth = frozen.plant.events.frames(
        datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 2, tzinfo=timezone.utc)
    )
    assert sorted(f["Name"] for f in body["Items"]) == sorted(f.name for f in truth)
    kinds = {f.kind for f in truth}
    assert {"background", "chattering", "flood", "downtime"} <= kinds
    names = [f["Name"] for f in body["Items"]]
    assert names == sorted(names, key=str.upper)  # default sortField=Name


def test_filters(http, frames_url, frozen):
    now = frozen.plant.clock.now_us()
    truth = frozen.plant.events.frames(
        datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 2, tzinfo=timezone.utc)
    )
    assert _names(http, frames_url, **WINDOW, templateName="TripAlarm") == sorted(
        f.name for f in truth if f.template.name == "TripAlarm"
    )
    assert _names(http, frames_url, **WINDOW, severity=["Major", "Critical"]) == sorted(
        f.name for f in truth if f.severity in ("Major", "Critical")
    )
    assert _names(http, frames_url, **WINDOW, canBeAcknowledged="false") == sorted(
        f.name for f in truth if not f.template.can_be_acknowledged
    )
    assert _names(http, frames_url, **WINDOW, isAcknowledged="true") == sorted(
        f.name for f in truth if f.is_acknowledged(now)
    )
    starting = _names(http, frames_url, **WINDOW, searchMode="StartInclusive")
    assert starting == sorted(f.name for f in truth if f.start_us >= 1714521600_000000)


def test_in_progress_frames_are_open_and_end_in_9999(http, frames_url, frozen):
    body = http.get(frames_url, params={"searchMode": "InProgress", "startTime": "*-3d", "maxCount": 10000}).json()[
        "Items"
    ]
    assert body and all(f["EndTime"] == "9999-12-31T23:59:59Z" for f in body)
    assert all(f["StartTime"] <= "2024-05-02T12:00:00Z" for f in body)
    truth = [
        f for f in frozen.plant.events.search(0, frozen.plant.clock.now_us(), frozen.plant.clock.now_us(), "InProgress")
    ]
    assert sorted(f["Name"] for f in body) == sorted(f.name for f in truth)
    standing = [
        f
        for f in frozen.plant.events.frames(datetime(2024, 4, 28, tzinfo=timezone.utc), FROZEN_NOW)
        if f.end_us - f.start_us > 24 * 3600 * 1_000_000
    ]
    assert standing  # alarms active more than 24 h exist for the standing-alarm KPI


def test_paging_annotations_and_lookup(http, frames_url, frozen, validate):
    everything = http.get(frames_url, params={**WINDOW, "maxCount": 10000}).json()["Items"]
    paged = []
    for start in range(0, len(everything) + 10, 10):
        paged += http.get(frames_url, params={**WINDOW, "startIndex": start, "maxCount": 10}).json()["Items"]
    assert [f["WebId"] for f in paged] == [f["WebId"] for f in everything]
    annotated = next(f for f in everything if f["IsAnnotated"])
    notes = http.get(annotated["Links"]["Annotations"]).json()
    validate(notes, "Items[Annotation]")
    assert notes["Items"] and notes["Items"][0]["Value"].startswith("Checked")
    one = http.get(annotated["Links"]["Self"]).json()
    validate(one, "EventFrame")
    assert one == annotated
    by_path = http.get("eventframes", params={"path": annotated["Path"]}).json()
    assert by_path["WebId"] == annotated["WebId"]
    element = http.get(annotated["Links"]["PrimaryReferencedElement"]).json()
    assert element["WebId"] == annotated["RefElementWebIds"][0]
    rules = http.get(element["Links"]["NotificationRules"]).json()
    validate(rules, "Items[NotificationRule]")
    assert rules["Items"][0]["Name"] == f"{element['Name']} alarms"
    assert http.get(frames_url, params={"searchMode": "Sideways"}).status_code == 400
