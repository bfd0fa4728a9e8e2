"""recordedattime(s), interpolatedattimes and plot, stream and streamset forms, against ground truth recomputed
here one value at a time from plant.recorded, and against the swagger's shapes."""

from datetime import datetime, timedelta, timezone

import pytest

from pi_platform.pitime import format_time
from pi_platform_tests.simulator.support import DAY


def _rows(plant, point, start, end):
    """Ground truth: (timestamp, row) in archive order (same-timestamp values in position order)."""
    table = plant.recorded(point.web_id, start, end).to_pylist()
    return [(r["timestamp"], r) for r in table]


def _stamp(item) -> datetime:
    return datetime.fromisoformat(item["Timestamp"].replace("Z", "+00:00"))


def _expected_at(rows, t, mode):
    before = [r for r in rows if r[0] <= t]
    if mode in ("AtOrBefore", "Auto"):
        return before[-1][0] if before else None
    if mode == "Exact":
        return before[-1][0] if before and before[-1][0] == t else None
    if mode == "Before":
        strictly = [r for r in rows if r[0] < t]
        return strictly[-1][0] if strictly else None
    after = [r for r in rows if (r[0] >= t if mode == "AtOrAfter" else r[0] > t)]
    return after[0][0] if after else None


def test_recorded_at_time_every_retrieval_mode(http, frozen, validate):
    plant = frozen.plant
    point = plant.points[7]  # index % 10 == 7: several values share some timestamps
    start = datetime(2024, 5, 1, 6, tzinfo=timezone.utc)
    rows = _rows(plant, point, start - timedelta(hours=1), start + timedelta(hours=1))
    on_value = rows[len(rows) // 2][0]
    between = on_value + timedelta(microseconds=1)
    for t in (on_value, between):
        for mode in ("Auto", "AtOrBefore", "Before", "AtOrAfter", "After", "Exact"):
            reply = http.get(
                f"streams/{point.web_id}/recordedattime", params={"time": format_time(t), "retrievalMode": mode}
            )
            assert reply.status_code == 200, reply.text
            validate(reply.json(), "TimedValue")
            expected = _expected_at(rows, t, mode)
            if expected is None:
                assert reply.json()["Value"]["Name"] == "No Data" and reply.json()["Good"] is False
            else:
                assert _stamp(reply.json()) == expected, (t, mode)
    group = [r for r in rows if sum(1 for q in rows if q[0] == r[0]) > 1]
    if group:  # several values at one timestamp: the before-modes return the last of them, the after-modes the first
        t, _ = group[0]
        same = [r[1] for r in rows if r[0] == t]
        last = http.get(f"streams/{point.web_id}/recordedattime", params={"time": format_time(t)}).json()
        first = http.get(
            f"streams/{point.web_id}/recordedattime", params={"time": format_time(t), "retrievalMode": "AtOrAfter"}
        ).json()
        assert (last["Questionable"], last["Annotated"]) == (same[-1]["questionable"], same[-1]["annotated"])
        assert (first["Questionable"], first["Annotated"]) == (same[0]["questionable"], same[0]["annotated"])
    bad = http.get(f"streams/{point.web_id}/recordedattime", params={"time": "*", "retrievalMode": "Sideways"})
    assert bad.status_code == 400 and "retrievalMode" in bad.json()["Errors"][0]


def test_recorded_and_interpolated_at_times(http, frozen, validate):
    plant = frozen.plant
    point = plant.catalog.point_by_name("Pump00001.Flow")
    rows = _rows(plant, point, datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 2, tzinfo=timezone.utc))
    times = [datetime(2024, 5, 1, h, 17, 3, tzinfo=timezone.utc) for h in (9, 3, 15)]
    params = [("time", format_time(t)) for t in times] + [("sortOrder", "Descending")]
    recorded = http.get(f"streams/{point.web_id}/recordedattimes", params=params).json()
    validate(recorded, "ExtendedTimedValues")
    ordered = sorted(times, reverse=True)
    assert [_stamp(i) for i in recorded["Items"]] == [_expected_at(rows, t, "AtOrBefore") for t in ordered]
    interpolated = http.get(f"streams/{point.web_id}/interpolatedattimes", params=params).json()
    validate(interpolated, "TimedValues")
    for item, t in zip(interpolated["Items"], ordered):
        prev = [r for r in rows if r[0] <= t][-1][1]
        nxt = [r for r in rows if r[0] > t][0][1]
        assert _stamp(item) == t
        if prev["value"] is not None and nxt["value"] is not None and not prev["is_system"] and not nxt["is_system"]:
            frac = (t - prev["timestamp"]) / (nxt["timestamp"] - prev["timestamp"])
            assert item["Value"] == pytest.approx(prev["value"] + frac * (nxt["value"] - prev["value"]), rel=1e-6)
    assert http.get(f"streams/{point.web_id}/recordedattimes").status_code == 400  # time is required


def _expected_plot(rows, start, end, intervals):
    """Per interval: first, last, min, max of numbers, first non-number; union in archive order."""
    span = (end - start) / intervals
    chosen: set[int] = set()
    for k in range(intervals):
        lo, hi = start + k * span, start + (k + 1) * span
        inside = [i for i, (t, _) in enumerate(rows) if lo <= t < hi or (k == intervals - 1 and t == end)]
        if not inside:
            continue
        chosen |= {inside[0], inside[-1]}
        numbers = [i for i in inside if rows[i][1]["value"] is not None and rows[i][1]["digital_state"] is None]
        if numbers:
            chosen.add(min(numbers, key=lambda i: (rows[i][1]["value"], i)))
            chosen.add(max(numbers, key=lambda i: (rows[i][1]["value"], -i)))
        others = [i for i in inside if i not in numbers]
        if others:
            chosen.add(others[0])
    return [rows[i][0] for i in sorted(chosen)]


def test_plot_picks_first_last_min_max_and_exceptions(http, frozen, validate):
    plant = frozen.plant
    start, end = datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    for point in (plant.catalog.point_by_name("Pump00001.Flow"), plant.catalog.point_by_name("EDGE.DigitalSystem")):
        rows = _rows(plant, point, start, end)
        body = http.get(
            f"streams/{point.web_id}/plot",
            params={"startTime": format_time(start), "endTime": format_time(end), "intervals": 7},
        ).json()
        validate(body, "TimedValues")
        assert [_stamp(i) for i in body["Items"]] == _expected_plot(rows, start, end, 7)
        assert len(body["Items"]) <= 5 * 7


def test_streamset_forms_equal_the_stream_forms(http, frozen, validate):
    plant = frozen.plant
    points = plant.points[:3]
    common = [("startTime", DAY[0]), ("endTime", DAY[1]), ("intervals", "5"), ("time", "2024-05-01T10:00:00Z")]
    element = next(e for e in plant.catalog.elements if any(a.point is not None for a in e.attributes))
    for name, definition in (
        ("plot", "Items[StreamValues]"),
        ("recordedattimes", "Items[StreamValues]"),
        ("interpolatedattimes", "Items[StreamValues]"),
        ("recordedattime", "Items[StreamValue]"),
    ):
        adhoc = http.get(f"streamsets/{name}", params=[("webId", p.web_id) for p in points] + common).json()
        validate(adhoc, definition)
        for item, point in zip(adhoc["Items"], points):
            single = http.get(f"streams/{point.web_id}/{name}", params=common).json()
            assert item["WebId"] == point.web_id
            assert (item["Value"] if name == "recordedattime" else item["Items"]) == (
                single if name == "recordedattime" else single["Items"]
            )
        by_element = http.get(f"streamsets/{element.web_id}/{name}", params=common).json()
        validate(by_element, definition)
        assert [i["Name"] for i in by_element["Items"]] == [a.name for a in element.attributes if a.point is not None]
