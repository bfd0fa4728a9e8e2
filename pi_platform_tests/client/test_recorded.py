"""Recorded values through the real client against the real simulator equal the plant's ground truth."""

from datetime import timedelta

import httpx
import numpy as np
import pytest
import pyarrow.compute as pc

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.client.errors import PagingError
from pi_platform.value_columns import VALUE_KEY, sort_values
from pi_platform_tests.client.support import ground_truth, read_recorded, run, settled_day


def _edge(plant, name: str):
    return next(p for p in plant.points if p.name == name)


def _max_group(table) -> int:
    return int(pc.max(table["position"]).as_py()) + 1 if table.num_rows else 0


def test_thousand_tags_one_day_under_faults_equal_ground_truth(make_simulator) -> None:
    sim = make_simulator(n_tags=1000)
    # Rates high enough that every run meets both kinds of fault on its ~35 requests, and max_retries high
    # enough that no request exhausts them (0.4 ** 16 per request).
    sim.set_faults(error_rate=0.2, status_429_rate=0.2, latency_ms=5, retry_after_s=0)
    web_ids = [p.web_id for p in sim.plant.points]
    start, end = settled_day(sim.plant)
    config = PIWebAPIConfig(url=sim.base_url, max_retries=15, backoff_base_s=0.01, backoff_max_s=0.2,
                            max_requests_per_second=None, max_concurrency=4)
    batch, pi = read_recorded(config, web_ids, start, end)
    truth = ground_truth(sim.plant, web_ids, start, end)
    got = sort_values(batch.values)
    assert got.num_rows == truth.num_rows > 1000 * 1000
    assert got.equals(truth)
    assert batch.rejects.num_rows == 0
    # The faults really happened and were retried (counted by the client, not timed).
    assert pi.transport.stats.retries["429"] > 0
    assert sum(n for reason, n in pi.transport.stats.retries.items() if reason.startswith("5")) > 0
    # Every value shape was in play: same-timestamp groups, system states, digital states, strings, flags.
    assert _max_group(got) > 1 and pc.sum(got["is_system"]).as_py() > 0
    digital = pc.and_(pc.is_valid(got["digital_state"]), pc.invert(got["is_system"]))
    strings = pc.and_(pc.is_valid(got["value_str"]), pc.is_null(got["digital_state"]))
    assert pc.sum(digital).as_py() > 0 and pc.sum(strings).as_py() > 0
    assert all(pc.sum(got[flag]).as_py() > 0 for flag in ("questionable", "substituted", "annotated"))


def test_same_timestamp_groups_straddle_and_fill_pages(simulator) -> None:
    plant = simulator.plant
    point = _edge(plant, "EDGE.SameTs")
    start, end = settled_day(plant)
    end = start + timedelta(hours=2)
    truth = ground_truth(plant, [point.web_id], start, end)
    page_size = 7
    assert _max_group(truth) > page_size  # some pages are one timestamp: maxCount has to grow
    spy: list = []
    config = PIWebAPIConfig(url=simulator.base_url, page_size=page_size, max_requests_per_second=None)
    batch, _ = read_recorded(config, [point.web_id], start, end, spy)
    assert sort_values(batch.values).equals(truth)
    max_counts = [dict(params)["maxCount"] for _, params in spy]
    assert max(max_counts) > page_size and len(spy) > truth.num_rows / _max_group(truth)


def test_pages_of_only_system_states(simulator) -> None:
    plant = simulator.plant
    point = _edge(plant, "EDGE.SystemRun")
    start, end = settled_day(plant)
    end = start + timedelta(hours=5)
    truth = ground_truth(plant, [point.web_id], start, end)
    system = truth["is_system"].to_numpy(zero_copy_only=False)
    run = np.diff(np.flatnonzero(np.diff(np.r_[0, system.astype(int), 0]))).max()  # longest system run
    page_size = 50
    assert run > 3 * page_size and (~system).any()  # whole pages of system states, then real values
    config = PIWebAPIConfig(url=simulator.base_url, page_size=page_size, max_requests_per_second=None)
    batch, _ = read_recorded(config, [point.web_id], start, end)
    assert sort_values(batch.values).equals(truth)


def test_only_full_streams_are_requeried(simulator) -> None:
    plant = simulator.plant
    dense = _edge(plant, "EDGE.Dense")
    sparse = [p for p in plant.points if not p.edge][:5]
    start, end = settled_day(plant)
    end = start + timedelta(hours=1)
    web_ids = [dense.web_id] + [p.web_id for p in sparse]
    truth = ground_truth(plant, web_ids, start, end)
    config = PIWebAPIConfig(url=simulator.base_url, page_size=500, max_requests_per_second=None)
    spy: list = []
    batch, _ = read_recorded(config, web_ids, start, end, spy)
    assert sort_values(batch.values).equals(truth)
    requested = [[v for k, v in params if k == "webId"] for _, params in spy]
    assert requested[0] == web_ids  # one streamsets call for all tags first
    assert len(requested) > 2 and all(ids == [dense.web_id] for ids in requested[1:])


def test_windows_and_url_splitting_neither_lose_nor_double(simulator) -> None:
    plant = simulator.plant
    same_ts = _edge(plant, "EDGE.SameTs")
    day_start, day_end = settled_day(plant)
    group_ts = ground_truth(plant, [same_ts.web_id], day_start, day_end)["timestamp"][200].as_py()
    start, end = group_ts - timedelta(hours=3), group_ts + timedelta(hours=2, minutes=30)  # a boundary on a group
    web_ids = [p.web_id for p in plant.points]
    truth = ground_truth(plant, web_ids, start, end)
    config = PIWebAPIConfig(url=simulator.base_url, window_s=3600, max_url_length=600, page_size=100,
                            max_requests_per_second=None)
    spy: list = []
    batch, _ = read_recorded(config, web_ids, start, end, spy)
    assert sort_values(batch.values).equals(truth)
    urls = [str(httpx.URL(f"{simulator.base_url}/{path}", params=params)) for path, params in spy]
    assert max(map(len, urls)) <= 600 and len({u.split("&startTime")[0] for u in urls}) > 1  # really split
    assert len({dict(params)["endTime"] for _, params in spy}) == 6  # 5.5 h in 1 h windows


def test_per_value_errors_and_web_exceptions(simulator) -> None:
    plant = simulator.plant
    web_ids = [p.web_id for p in plant.points[:10]]
    start, end = settled_day(plant)
    end = start + timedelta(hours=6)
    truth = ground_truth(plant, web_ids, start, end)
    simulator.set_faults(value_error_rate=0.01, web_exception_rate=0.5)  # ~40 stream answers: some break
    config = PIWebAPIConfig(url=simulator.base_url, max_retries=20, backoff_base_s=0.01, backoff_max_s=0.1,
                            max_requests_per_second=None, page_size=200)
    batch, pi = read_recorded(config, web_ids, start, end)
    assert batch.rejects.num_rows > 0
    assert set(pc.unique(batch.rejects["reason"]).to_pylist()) == {
        "PI reported per-value Errors: Value: Failed to read the value from the data archive."}
    assert batch.values.num_rows + batch.rejects.num_rows == truth.num_rows  # nothing silently dropped
    got = batch.values.to_pandas().set_index(list(VALUE_KEY))
    expected = truth.to_pandas().set_index(list(VALUE_KEY)).loc[got.index]
    assert got.sort_index().equals(expected.sort_index())  # every value kept is right, keys included
    assert any(reason.startswith("WebException") for reason in pi.transport.stats.retries)


def test_groups_larger_than_the_server_cap_fail_loudly(make_simulator) -> None:
    sim = make_simulator(max_returned_items=20)
    point = _edge(sim.plant, "EDGE.SameTs")
    start, end = settled_day(sim.plant)
    assert _max_group(ground_truth(sim.plant, [point.web_id], start, end)) > 20  # PI could not page this
    config = PIWebAPIConfig(url=sim.base_url, page_size=10, server_max_items=20, max_requests_per_second=None)
    with pytest.raises(PagingError, match="share timestamp .* at most 20 per call"):
        read_recorded(config, [point.web_id], start, end)


def test_tag_names_via_path_only_webids_come_back_under_canonical_webids(simulator) -> None:
    plant = simulator.plant
    points = [p for p in plant.points if not p.edge][:8]
    start, end = settled_day(plant)
    end = start + timedelta(hours=3)
    config = PIWebAPIConfig(url=simulator.base_url, max_requests_per_second=None)

    async def go():
        async with PIWebAPIClient(config) as pi:
            server = await pi.data_server()
            web_ids = pi.tag_web_ids([p.name for p in points], server["Name"])
            return await pi.recorded_table(web_ids, start, end)

    table = run(go())
    assert sort_values(table).equals(ground_truth(plant, [p.web_id for p in points], start, end))


def test_a_range_ending_before_it_starts_reads_nothing(simulator, caplog) -> None:
    plant = simulator.plant
    ahead = plant.now() + timedelta(minutes=5)  # e.g. a high-water mark stamped by a clock running ahead
    batch, pi = read_recorded(PIWebAPIConfig(url=simulator.base_url), [plant.points[0].web_id], ahead, "*")
    assert batch.values.num_rows == 0 and pi.transport.stats.attempts == 0
    assert "nothing to read" in caplog.text


def test_recorded_streams_in_bounded_chunks(simulator) -> None:
    plant = simulator.plant
    web_ids = [p.web_id for p in plant.points[:20]]
    start, end = settled_day(plant)
    config = PIWebAPIConfig(url=simulator.base_url, window_s=4 * 3600, page_size=500, max_url_length=700,
                            max_requests_per_second=None)

    async def go():
        async with PIWebAPIClient(config) as pi:
            batches = pi.recorded(web_ids, start, end)
            return [(b.values.num_rows, len(set(b.values["web_id"].to_pylist()))) async for b in batches]

    chunks = run(go())
    assert len(chunks) >= 6 * 3  # at least one chunk per (window, URL group): never the whole day at once
    assert all(rows <= streams * 500 for rows, streams in chunks)  # a chunk is one page of its streams
    assert sum(rows for rows, _ in chunks) == ground_truth(plant, web_ids, start, end).num_rows
