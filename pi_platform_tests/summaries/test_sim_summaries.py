"""The simulator's summary and interpolation endpoints against an independent computation on its raw values."""

from datetime import timedelta

import pytest

from pi_platform.pitime import format_time, from_us, parse_time, to_us
from pi_platform_tests.summaries import truth
from pi_platform_tests.summaries.conftest import DAY_START, TAGS

END = DAY_START + timedelta(days=1)
NUMERIC_TYPES = ("Total", "Average", "Minimum", "Maximum", "Range", "StdDev", "PopulationStdDev")


def _summaries(http, web_ids, **params) -> dict:
    query = [("webId", w) for w in web_ids] + [("summaryType", "All")] + list(params.items())
    response = http.get("streamsets/summary", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def _by_type(items: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for item in items:
        out.setdefault(item["Type"], []).append(item["Value"])
    return out


@pytest.mark.parametrize("basis", ["TimeWeighted", "EventWeighted"])
def test_streamset_summaries_equal_an_independent_computation(sim, http, points, validate, basis):
    body = _summaries(http, [points[n].web_id for n in TAGS], startTime=format_time(DAY_START),
                      endTime=format_time(END), summaryDuration="1h", calculationBasis=basis)
    validate(body, "Items[StreamSummaries]")
    spans = truth.hours(DAY_START, 24)
    seen_bad = seen_good = 0
    for name, stream in zip(TAGS, body["Items"]):
        point = points[name]
        assert stream["Name"] == name
        raw = truth.raw(sim.plant, point.web_id, DAY_START, END)
        got = _by_type(stream["Items"])
        assert all(len(values) == 24 for values in got.values()) and "TotalWithUOM" in got
        for k, (lo, hi) in enumerate(spans):
            expected = (truth.time_weighted(raw, lo, hi, point.step) if basis == "TimeWeighted"
                        else truth.event_weighted(raw, lo, hi, include_end=False))
            for kind in ("Count", "PercentGood", *NUMERIC_TYPES):
                value = got[kind][k]
                numeric_tag = point.kind in ("numeric", "integer")
                if kind in expected and (numeric_tag or kind in ("Count", "PercentGood")):
                    assert value["Good"] is True, (name, k, kind, value)
                    # E[x^2] - mean^2 in the truth loses ~1e-8 x mean to cancellation on a flat hour
                    slack = 1e-6 * max(1.0, abs(expected.get("Average", 0.0))) if "StdDev" in kind else 1e-9
                    assert value["Value"] == pytest.approx(expected[kind], rel=1e-9, abs=slack), (name, k, kind)
                else:  # no good data, a digital tag, one event for StdDev: PI's error value, never a number
                    assert value["Good"] is False and value["Value"]["IsSystem"] is True, (name, k, kind, value)
                stamp = value["Timestamp"]
                if kind in ("Minimum", "Maximum") and value["Good"]:
                    assert to_us(parse_time(stamp)) >= lo and to_us(parse_time(stamp)) <= hi  # Auto: the extreme's time
                else:
                    assert stamp == format_time(from_us(lo))
            seen_bad += expected["PercentGood"] < 100
            seen_good += expected["PercentGood"] == 100
    assert seen_bad and seen_good  # the bad-value tag really had bad time


def test_event_weighted_edges_follow_pi_rules(sim, http, points):
    """One interval counts events on both edges; several count an edge event in the later interval only."""
    point = points["Pump00001.Flow"]
    raw = truth.raw(sim.plant, point.web_id, DAY_START, END)
    whole = raw.ts[(raw.ts >= to_us(DAY_START)) & (raw.ts % 1_000_000 == 0)]
    t_a, t_m = int(whole[10]), int(whole[40])
    span_s = (t_m - t_a) // 1_000_000
    single = _summaries(http, [point.web_id], startTime=format_time(from_us(t_a)), endTime=format_time(from_us(t_m)),
                        calculationBasis="EventWeighted")
    count = _by_type(single["Items"][0]["Items"])["Count"]
    assert [c["Value"] for c in count] == [truth.event_weighted(raw, t_a, t_m, include_end=True)["Count"]]
    two = _summaries(http, [point.web_id], startTime=format_time(from_us(t_a)),
                     endTime=format_time(from_us(t_a + 2 * (t_m - t_a))), summaryDuration=f"{span_s}s",
                     calculationBasis="EventWeighted")
    counts = [c["Value"] for c in _by_type(two["Items"][0]["Items"])["Count"]]
    assert counts[0] == truth.event_weighted(raw, t_a, t_m, include_end=False)["Count"] == count[0]["Value"] - 1
    assert counts[1] == truth.event_weighted(raw, t_m, t_a + 2 * (t_m - t_a), include_end=True)["Count"]
    both = _summaries(http, [point.web_id], startTime=format_time(from_us(t_a)),
                      endTime=format_time(from_us(t_a + 2 * (t_m - t_a))), summaryDuration=f"{span_s}s",
                      calculationBasis="EventWeightedIncludeBothEnds")
    assert _by_type(both["Items"][0]["Items"])["Count"][0]["Value"] == count[0]["Value"]


def test_time_types_digital_streams_element_streams_and_refusals(sim, http, points):
    flow, mode = points["Pump00001.Flow"].web_id, points["Pump00001.Mode"].web_id
    window = {"startTime": format_time(DAY_START), "endTime": format_time(END), "summaryDuration": "6h"}
    pump = next(e for e in sim.plant.elements if e.name == "Pump00001")
    by_element = http.get(f"streamsets/{pump.web_id}/summary", params={**window, "summaryType": "Count"}).json()
    assert [s["Name"] for s in by_element["Items"]] == [a.name for a in pump.attributes if a.point is not None]
    assert all(len(s["Items"]) == 4 for s in by_element["Items"])
    for time_type, offset in (("EarliestTime", 0), ("MostRecentTime", 6)):
        body = http.get(f"streams/{flow}/summary", params={**window, "summaryType": "Maximum", "timeType": time_type}).json()
        assert [i["Value"]["Timestamp"] for i in body["Items"]] == [
            format_time(DAY_START + timedelta(hours=6 * k + offset)) for k in range(4)]
    digital = http.get(f"streams/{mode}/summary", params={**window, "summaryType": "AllForNonNumeric"}).json()
    assert {i["Type"] for i in digital["Items"]} == {"Count", "PercentGood"}
    assert all(i["Value"]["Good"] for i in digital["Items"])
    refused = {
        (f"streams/{mode}/summary", "summaryType", "Average"): 409,  # PI: Count is the only type on non-numeric
        (f"streams/{flow}/summary", "calculationBasis", "Weighted"): 400,
        (f"streams/{flow}/summary", "timeType", "Middle"): 400,
        (f"streams/{flow}/summary", "summaryType", "Median"): 400,
        (f"streams/{flow}/summary", "summaryDuration", "soon"): 400,
        (f"streams/{flow}/summary", "sampleType", "Plot"): 400,
        (f"streams/{flow}/summary", "filterExpression", "'.' > 5"): 409,
    }
    for (path, name, value), status in refused.items():
        response = http.get(path, params={**window, name: value})
        assert response.status_code == status, (name, value, response.text)
        assert len(response.json()["Errors"]) == 1
    rate = http.get(f"streams/{flow}/summary", params={**window, "summaryType": ["Average", "TotalWithUOM"]}).json()
    average, total = rate["Items"][0], rate["Items"][4]
    assert total["Type"] == "TotalWithUOM" and total["Value"]["UnitsAbbreviation"] == "m3"  # m3/h over 6 h -> m3
    assert total["Value"]["Value"] == pytest.approx(average["Value"]["Value"] * 6)


def test_interpolated_values_equal_an_independent_computation(sim, http, points):
    params = [("webId", points[n].web_id) for n in TAGS]
    params += [("startTime", format_time(DAY_START)), ("endTime", format_time(END)), ("interval", "1h")]
    body = http.get("streamsets/interpolated", params=params).json()
    bad = 0
    for name, stream in zip(TAGS, body["Items"]):
        point = points[name]
        raw = truth.raw(sim.plant, point.web_id, DAY_START, END)
        assert len(stream["Items"]) == 25
        for item in stream["Items"]:
            good, expected = truth.interpolated(raw, to_us(parse_time(item["Timestamp"])), point.step)
            assert item["Good"] is good, (name, item)
            if isinstance(expected, str):
                assert item["Value"]["Name"] == expected, (name, item)
            else:
                assert item["Value"] == pytest.approx(expected, rel=1e-6), (name, item)  # Float32 tags print 7 digits
            bad += not good
    assert bad > 0  # EDGE.SystemRun's bad hours are served as its system states
