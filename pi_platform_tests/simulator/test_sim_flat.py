"""Exception and compression over real sockets: flat tags archive rarely but their snapshot keeps moving, and the
point attributes served say so. Checks are made against the recorded series itself (changes, grids, gaps),
not against the generator's internals."""

import asyncio
from datetime import datetime, timedelta

import httpx
import orjson
import pyarrow.compute as pc
import websockets

from pi_platform.pitime import format_time
from pi_platform.value_columns import sort_values
from pi_platform_tests.simulator.support import FROZEN_NOW, items_to_table

TWO_DAYS_AGO = FROZEN_NOW - timedelta(days=2)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _flat_sim(make_simulator, **config):
    return make_simulator(now=FROZEN_NOW, flat_fraction=0.5, **config)


def _quiet_flat_tag(plant):
    """The flat numeric tag that holds its level longest (hours), so its archive has compmax-long gaps."""
    flat = [p for p in plant.points if p.flat and p.kind == "numeric"]
    return max(flat, key=plant.flat.mean_hold_s)


def test_flat_archive_has_gaps_up_to_compmax_while_snapshot_moves_every_excmax(make_simulator):
    sim = _flat_sim(make_simulator)
    plant, tag = sim.plant, _quiet_flat_tag(sim.plant)
    c = plant.compression(tag)
    assert (c.excmax_s, c.compmax_s) == (600, 28_800)
    with httpx.Client(base_url=sim.base_url + "/") as http:
        params = {"startTime": format_time(TWO_DAYS_AGO), "endTime": format_time(FROZEN_NOW), "maxCount": 10_000}
        items = http.get(f"streams/{tag.web_id}/recorded", params=params).json()["Items"]
        table = items_to_table(items, tag.web_id, tag.name, tag.units)
        assert table.equals(plant.recorded(tag.web_id, TWO_DAYS_AGO, FROZEN_NOW))
        stamps = [_ts(i["Timestamp"]) for i in items]
        values = [i["Value"] for i in items]
        gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
        assert max(gaps) <= c.compmax_s and max(gaps) > 4 * 3600  # silent for hours, never past compmax
        for before, after, at in zip(values, values[1:], stamps[1:]):  # archived only on change or compmax
            assert after != before or at.timestamp() % c.compmax_s == 0
            assert after == before or abs(after - before) > c.compdev > c.excdev
        # Walk the clock through the longest archive gap: the snapshot is never older than excmax.
        gap_start = stamps[gaps.index(max(gaps))]
        moved = set()
        for minutes in range(7, 8 * 60, 37):
            at = gap_start + timedelta(minutes=minutes)
            httpx.post(sim.admin_url + "/clock", json={"now": format_time(at)})
            snapshot = http.get(f"streams/{tag.web_id}/value").json()
            taken = _ts(snapshot["Timestamp"])
            assert timedelta(0) <= at - taken <= timedelta(seconds=c.excmax_s)
            assert snapshot["Value"] == values[stamps.index(gap_start)]  # the held level
            assert taken.timestamp() % c.excmax_s == 0 or taken == gap_start
            assert http.get(f"streams/{tag.web_id}/end").json()["Timestamp"] == format_time(gap_start)
            want = plant.snapshot(tag.web_id, at)
            assert want["timestamp"][0].as_py() == taken and want["value"][0].as_py() == snapshot["Value"]
            moved.add(taken)
        assert len(moved) > 10


def test_point_attributes_are_served_and_match_observed_rates(make_simulator, validate):
    sim = _flat_sim(make_simulator, n_tags=250)
    plant = sim.plant
    flat, continuous = _quiet_flat_tag(plant), plant.points[1]
    assert not continuous.flat
    with httpx.Client(base_url=sim.base_url + "/") as http:
        served = {}
        for tag in (flat, continuous):
            body = http.get(f"points/{tag.web_id}/attributes").json()
            validate(body, "Items[PointAttribute]")
            served[tag.name] = {a["Name"]: a["Value"] for a in body["Items"]}
            one = http.get(f"points/{tag.web_id}/attributes/excmax").json()
            validate(one, "PointAttribute")
            assert one["Value"] == served[tag.name]["excmax"]
        picked = http.get(f"points/{flat.web_id}/attributes", params=[("name", "compmax"), ("name", "ptclassname")])
        assert [a["Name"] for a in picked.json()["Items"]] == ["compmax", "ptclassname"]
    f, c = served[flat.name], served[continuous.name]
    assert f["ptclassname"] == c["ptclassname"] == "classic"
    assert f["pointsource"] == f"Area{flat.index // 100 + 1:04d}" and c["pointsource"] == "Area0001"  # 100 tags/area
    assert {p.name for p in plant.interfaces()["Area0001"]} == {p.name for p in plant.points[:100]}
    # Continuous tags archive every scan: no deviation, snapshot (= archive) never older than excmax.
    assert (c["excdev"], c["compdev"], c["excdevpercent"], c["compdevpercent"]) == (0, 0, 0, 0)
    day = plant.recorded(continuous.web_id, TWO_DAYS_AGO, FROZEN_NOW)["timestamp"].to_pylist()
    gaps = [(b - a).total_seconds() for a, b in zip(day, day[1:])]
    assert max(gaps) <= c["excmax"] and c["compmax"] >= c["excmax"] >= 600
    scan_classes = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
    mean_gap = sum(gaps) / len(gaps)
    assert 0.5 <= scan_classes[c["location4"] - 1] / mean_gap <= 2  # the scan class is the value rate
    # Flat tags: deviations below the smallest change they ever make, percentages of span.
    assert 0 < f["excdev"] < f["compdev"] and f["excmax"] == 600 and f["compmax"] == 28_800
    assert abs(f["compdevpercent"] - 100 * f["compdev"] / f["span"]) < 1e-6
    levels = pc.unique(plant.recorded(flat.web_id, TWO_DAYS_AGO, FROZEN_NOW)["value"]).to_pylist()
    steps = [abs(a - b) for i, a in enumerate(levels) for b in levels[i + 1 :]]
    assert min(steps) > f["compdev"] and f["step"] == 1


def test_streamset_snapshots_and_channels_of_flat_tags(make_simulator, validate):
    sim = _flat_sim(make_simulator, channel_poll_interval_s=0.05)
    plant = sim.plant
    quiet = sorted((p for p in plant.points if p.flat), key=plant.flat.mean_hold_s)[-6:]
    tags = [*quiet, next(p for p in plant.points if not p.flat)]
    steps = [FROZEN_NOW + timedelta(minutes=25 * k) for k in range(1, 13)]

    async def run() -> tuple[list[dict], list[dict]]:
        url = f"{sim.ws_url}/streamsets/channel?" + "&".join(f"webId={t.web_id}" for t in tags)
        messages, snapshots = [], []
        async with websockets.connect(url) as ws, httpx.AsyncClient(base_url=sim.base_url + "/") as http:
            for at in steps:
                await http.post(sim.admin_url + "/clock", json={"now": format_time(at)})
                query = [("webId", t.web_id) for t in tags]
                snapshots.append((await http.get("streamsets/value", params=query)).json())
                while True:  # every message this step brings (the channel is silent when nothing was archived)
                    try:
                        messages.append(orjson.loads(await asyncio.wait_for(ws.recv(), 0.4)))
                    except asyncio.TimeoutError:
                        break
        return messages, snapshots

    messages, snapshots = asyncio.run(run())
    for at, body in zip(steps, snapshots):
        validate(body, "Items[StreamValue]")
        for tag, item in zip(tags, body["Items"]):
            want = plant.snapshot(tag.web_id, at)
            assert _ts(item["Value"]["Timestamp"]) == want["timestamp"][0].as_py(), tag.name
            assert at - _ts(item["Value"]["Timestamp"]) <= timedelta(seconds=plant.compression(tag).excmax_s)
    pushed: dict[str, list[dict]] = {}
    for message in messages:
        for stream in message["Items"]:
            pushed.setdefault(stream["WebId"], []).extend(stream["Items"])
    for tag in tags:
        got = items_to_table(pushed.get(tag.web_id, []), tag.web_id, tag.name, tag.units)
        want = plant.recorded(tag.web_id, FROZEN_NOW + timedelta(microseconds=1), steps[-1], now=steps[-1])
        assert sort_values(got).equals(want), tag.name  # archive events only, not the excmax grid
    # The snapshots moved far more often than the flat tags' channels delivered.
    moves = {(t.name, s["Items"][i]["Value"]["Timestamp"]) for s in snapshots for i, t in enumerate(tags[:-1])}
    assert len(moves) > 2 * sum(len(pushed.get(t.web_id, [])) for t in tags[:-1])
