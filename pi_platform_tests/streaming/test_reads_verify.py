"""Verification reads (`reads.verify`) read back exactly the late groups, each run of groups within one second in its
own narrow read: groups minutes apart never make one read over the minutes between them (a read returns every
value of its streams in its window)."""

import asyncio
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.streaming import reads
from pi_platform.value_columns import VALUE_SCHEMA, sort_values

NOW = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
NOW_US = int(NOW.timestamp() * 1e6)
MINUTE = 60_000_000


def _us(values: pa.Table) -> np.ndarray:
    return values["timestamp"].cast(pa.int64()).to_numpy()


def _groups(plant) -> list[tuple[str, int]]:
    """Late groups of the kinds a batch carries, minutes apart: plain values of ordinary tags, a value PI corrected
    since, a group of several values at one instant, two streams' groups within a second (one read), and a group PI
    does not hold (a value deleted since)."""
    ordinary = [p for p in plant.points if not p.edge and not p.flat and p.point_type.startswith("Float")]
    window = [(p.web_id, plant.recorded(p.web_id, NOW - timedelta(minutes=40), NOW)) for p in ordinary[:6]]
    groups = [(web_id, int(_us(values)[len(values) // (k + 2)])) for k, (web_id, values) in enumerate(window[:3])]

    (near_a, a), (near_b, b) = window[3], window[4]
    ta, tb = _us(a), _us(b)
    gaps = np.abs(ta[:, None] - tb[None, :])
    i, j = np.unravel_index(np.argmin(np.where(gaps > 0, gaps, np.iinfo(np.int64).max)), gaps.shape)
    assert 0 < gaps[i, j] <= 1_000_000, "two streams with values within a second"
    groups += [(near_a, int(ta[i])), (near_b, int(tb[j]))]

    corrected = next((web_id, int(_us(v)[k])) for web_id, v in window
                     for k in np.flatnonzero(v["substituted"].to_numpy(zero_copy_only=False)))
    groups.append(corrected)

    same = plant.catalog.point_by_name("EDGE.SameTs")
    stacked = plant.recorded(same.web_id, NOW - timedelta(hours=3), NOW)
    stamps, counts = np.unique(_us(stacked), return_counts=True)
    groups.append((same.web_id, int(stamps[np.argmax(counts)])))

    web_id, values = window[5]
    empty = int(_us(values)[-1]) - 3 * MINUTE + 1
    assert plant.recorded(web_id, _at(empty), _at(empty), now=NOW).num_rows == 0
    groups.append((web_id, empty))  # no value stands there
    return groups


def test_verify_returns_exactly_pis_groups_in_reads_of_at_most_one_second(make_simulator):
    sim = make_simulator(n_tags=50, values_per_minute=30.0, now=NOW)
    plant = sim.plant
    groups = _groups(plant)
    stamps = sorted(ts for _, ts in groups)
    assert stamps[-1] - stamps[0] > 10 * MINUTE  # one read over all of them would span minutes
    truth = sort_values(pa.concat_tables([plant.recorded(w, _at(ts), _at(ts), now=NOW) for w, ts in groups]))
    assert truth.num_rows > len(groups)  # the stacked group holds several values
    assert truth["substituted"].to_pylist().count(True) >= 1

    windows: list[tuple[list[str], datetime, datetime]] = []
    in_flight, most_in_flight = 0, 0

    async def run() -> list[reads.AuthoritativeRows]:
        async with PIWebAPIClient(PIWebAPIConfig(url=sim.base_url)) as client:
            real = client.recorded_batch

            async def spy(web_ids, start, end):  # noqa: ANN001, ANN202 - PIWebAPIClient.recorded_batch's
                nonlocal in_flight, most_in_flight
                windows.append((list(web_ids), start, end))
                in_flight += 1
                most_in_flight = max(most_in_flight, in_flight)
                try:
                    return await real(web_ids, start, end)
                finally:
                    in_flight -= 1

            client.recorded_batch = spy  # type: ignore[method-assign]
            index = pd.MultiIndex.from_tuples(groups, names=["web_id", "ts"])
            return await reads.verify(client, index)

    outcome = asyncio.run(run())
    answers = outcome.answers
    assert outcome.failures == []

    got = sort_values(pa.concat_tables([a.rows for a in answers]).select(VALUE_SCHEMA.names).cast(VALUE_SCHEMA))
    assert got.equals(truth)
    assert all(a.rejects.num_rows == 0 for a in answers)
    assert len(windows) == len(answers) == len(groups) - 1  # the two groups within a second share one read
    assert all(end - start <= timedelta(seconds=1) for _, start, end in windows)
    assert most_in_flight > 1  # the runs are read at once, not one after another
    for web_ids, start, end in windows:  # each read is for the streams of its own groups only
        assert set(web_ids) == {w for w, ts in groups if _us_of(start) <= ts <= _us_of(end)}


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, timezone.utc)


def _us_of(moment: datetime) -> int:
    return round(moment.timestamp() * 1e6)
