"""The client's streamsets/summary reads, cut into many small requests, still equal the independent truth."""

import asyncio
from datetime import timedelta

import pyarrow.compute as pc
import pytest

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.pitime import from_us, to_us
from pi_platform_tests.summaries import truth
from pi_platform_tests.summaries.conftest import DAY_START, TAGS


def _read(config: PIWebAPIConfig, ids: list[str], start, end, step: timedelta, basis: str):
    async def main():
        async with PIWebAPIClient(config) as client:
            batch = await client.summaries(ids, start, end, duration=step, types=["Count", "Average"], basis=basis)
            return batch, client.transport.stats.attempts

    return asyncio.run(main())


@pytest.mark.parametrize("basis", ["EventWeighted", "TimeWeighted"])
def test_one_interval_per_request_and_one_tag_per_url_change_nothing(sim, points, basis):
    """Intervals start on an archived event, so PI's single-interval rule (both edges) would count it twice
    if the client sent a one-interval chunk as plain EventWeighted."""
    flow = truth.raw(sim.plant, points["Pump00001.Flow"].web_id, DAY_START, DAY_START + timedelta(days=1))
    whole = flow.ts[(flow.ts >= to_us(DAY_START)) & (flow.ts % 1_000_000 == 0)]
    t_a, t_m = int(whole[5]), int(whole[30])
    step = timedelta(microseconds=t_m - t_a)
    start, end = from_us(t_a), from_us(t_a + 4 * (t_m - t_a))
    ids = [points[n].web_id for n in TAGS]
    tiny = PIWebAPIConfig(url=sim.base_url, page_size=2, max_url_length=256)  # 1 interval x 1 tag per request
    batch, attempts = _read(tiny, ids, start, end, step, basis)
    assert attempts == 4 * len(TAGS) and batch.rejects.num_rows == 0
    rows = {(r["name"], r["summary_type"], to_us(r["interval_start"])): r for r in batch.values.to_pylist()}
    assert len(rows) == batch.values.num_rows == 2 * 4 * len(TAGS)
    for name in TAGS:
        point = points[name]
        raw = truth.raw(sim.plant, point.web_id, start, end)
        for k in range(4):
            lo, hi = t_a + k * (t_m - t_a), t_a + (k + 1) * (t_m - t_a)
            expected = (truth.event_weighted(raw, lo, hi, include_end=False) if basis == "EventWeighted"
                        else truth.time_weighted(raw, lo, hi, point.step))
            assert rows[(name, "Count", lo)]["value"] == pytest.approx(expected["Count"])
            average = rows[(name, "Average", lo)]
            if "Average" in expected and point.kind in ("numeric", "integer"):
                assert average["good"] and average["value"] == pytest.approx(expected["Average"], rel=1e-9)
            else:
                assert not average["good"] and average["value"] is None
    # the single-request answer is the same table
    whole_batch, _ = _read(PIWebAPIConfig(url=sim.base_url), ids, start, end, step, basis)
    order = [("name", "ascending"), ("summary_type", "ascending"), ("interval_start", "ascending")]
    assert whole_batch.values.sort_by(order).equals(batch.values.sort_by(order))
    assert pc.sum(pc.invert(batch.values["good"])).as_py() > 0  # digital Average, bad hours: PI's error value


def test_server_errors_and_broken_answers_are_retried_to_the_same_table(sim, points):
    """5xx answers (transport retries) and stream answers cut by a WebException (the summaries reader re-reads
    the group) leave the table exactly as a clean read does."""
    ids = [points[n].web_id for n in TAGS]
    start, end, step = DAY_START, DAY_START + timedelta(days=1), timedelta(minutes=30)
    clean, _ = _read(PIWebAPIConfig(url=sim.base_url), ids, start, end, step, "EventWeighted")
    sim.set_faults(error_rate=0.2, web_exception_rate=0.05)
    config = PIWebAPIConfig(url=sim.base_url, page_size=2, max_retries=20, backoff_base_s=0.001, backoff_max_s=0.01)

    async def main():
        async with PIWebAPIClient(config) as client:
            batch = await client.summaries(ids, start, end, duration=step, types=["Count", "Average"],
                                           basis="EventWeighted")
            return batch, client.transport.stats.retries

    batch, retries = asyncio.run(main())
    broken = retries["WebException 500"]
    assert broken > 0 and sum(retries.values()) > broken
    order = [("name", "ascending"), ("summary_type", "ascending"), ("interval_start", "ascending")]
    assert batch.values.sort_by(order).equals(clean.values.sort_by(order)) and clean.values.num_rows == 2 * 48 * 5
