"""The plant's ground truth: deterministic, edge-case tags as documented, corrections and pauses in time."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.simulator.catalog import SYSTEM_STATES
from pi_platform.simulator.plant import Plant
from pi_platform.value_columns import VALUE_SCHEMA

NOW = datetime(2024, 5, 2, 12, tzinfo=timezone.utc)
START, END = datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 2, tzinfo=timezone.utc)


def test_same_seed_same_values_different_seed_different():
    a, b, c = Plant(seed=7, n_tags=20, now=NOW), Plant(seed=7, n_tags=20, now=NOW), Plant(seed=8, n_tags=20, now=NOW)
    for point in a.points[:10]:
        ta = a.recorded(point.web_id, START, END)
        assert ta.equals(b.recorded(b.points[point.index].web_id, START, END))
        tc = c.recorded(c.points[point.index].web_id, START, END)
        assert not ta.drop(["web_id"]).equals(tc.drop(["web_id"]))
    assert [p.web_id for p in a.points] == [p.web_id for p in b.points]
    assert [p.web_id for p in a.points] != [p.web_id for p in c.points]


def test_any_range_is_the_slice_of_a_larger_range():
    plant = Plant(seed=3, n_tags=10, now=NOW)
    web_id = plant.points[7].web_id  # index 7: a tag with same-timestamp groups
    tick = timedelta(microseconds=1)
    day = plant.recorded(web_id, START, END - tick)
    edges = [START + timedelta(hours=h) for h in range(0, 25, 5)] + [END]
    parts = [plant.recorded(web_id, a, b - tick) for a, b in zip(edges, edges[1:]) if a < b]
    assert pa.concat_tables(parts).equals(day)
    assert day.num_rows > 1000


def test_about_values_per_minute_and_types():
    plant = Plant(seed=1, n_tags=50, values_per_minute=1.0, now=NOW)
    counts = [plant.recorded(p.web_id, START, END).num_rows for p in plant.points[:50]]
    assert 1200 < np.mean(counts) < 1700
    assert {p.point_type for p in plant.points} >= {"Float32", "Float64", "Int32", "Digital", "String"}
    table = plant.recorded(plant.catalog.point_by_name("Pump00001.Mode").web_id, START, END)
    assert table.schema == VALUE_SCHEMA
    states = set(pc.unique(table["digital_state"]).to_pylist())
    assert {"Running"} <= states <= {"Stopped", "Running", "Tripped", *SYSTEM_STATES.values()}


def test_system_states_are_bad_and_flagged():
    plant = Plant(seed=1, n_tags=50, now=NOW)
    table = plant.recorded(plant.catalog.point_by_name("EDGE.DigitalSystem").web_id, START, END).to_pylist()
    system = [r for r in table if r["is_system"]]
    assert system and all(not r["good"] and r["value"] is None and r["digital_code"] in (246, 254, 255) for r in system)
    # Pt Created is written only at point creation, never mid-series.
    assert {r["digital_state"] for r in system} == {"Shutdown", "I/O Timeout", "Bad Input"}


def test_edge_tags_break_naive_paging():
    plant = Plant(seed=1, n_tags=10, now=NOW)
    same = plant.recorded(plant.catalog.point_by_name("EDGE.SameTs").web_id, START, END)
    ts = same["timestamp"].to_numpy()
    _, sizes = np.unique(ts, return_counts=True)
    assert sizes.min() >= 5 and sizes.max() >= 25  # groups of 5-30 values at one timestamp
    assert same["position"].to_pylist()[: sizes[0]] == list(range(sizes[0]))
    run = plant.recorded(plant.catalog.point_by_name("EDGE.SystemRun").web_id, START, END)["is_system"].to_numpy()
    longest, current = 0, 0
    for flag in run:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    assert longest > 1500  # longer than a default 1000-value page
    dense = plant.recorded(plant.catalog.point_by_name("EDGE.Dense").web_id, START, END)
    assert dense.num_rows > 70_000


def test_corrections_appear_once_their_time_has_passed():
    plant = Plant(seed=5, n_tags=50, now=NOW)
    for point in plant.points:
        block = plant.generator.block(point, int(START.timestamp() * 1e6), int(END.timestamp() * 1e6))
        corrected = np.flatnonzero(block.corr_at < np.iinfo(np.int64).max)
        if len(corrected):
            break
    i = corrected[0]
    ts_us, corr_us = int(block.ts[i]), int(block.corr_at[i])
    at = datetime.fromtimestamp(ts_us / 1e6, timezone.utc)
    before = plant.recorded(point.web_id, at, at, now=datetime.fromtimestamp((corr_us - 1) / 1e6, timezone.utc))
    after = plant.recorded(point.web_id, at, at, now=datetime.fromtimestamp(corr_us / 1e6, timezone.utc))
    assert before.num_rows == after.num_rows == 1
    assert before["substituted"].to_pylist() == [False] and after["substituted"].to_pylist() == [True]
    assert before.drop(["substituted"]) != after.drop(["substituted"])


def test_only_values_up_to_now_exist():
    plant = Plant(seed=1, n_tags=5, now=NOW)
    table = plant.recorded(plant.points[0].web_id, NOW - timedelta(hours=2), NOW + timedelta(days=1))
    assert table.num_rows > 0
    assert pc.max(table["timestamp"]).as_py() <= NOW


def test_pause_window_removes_values_until_resume():
    plant = Plant(seed=1, n_tags=5, now=NOW)
    web_id, name = plant.points[0].web_id, plant.points[0].name
    full = plant.recorded(web_id, NOW - timedelta(hours=6), NOW)
    plant.pause([name], at=NOW - timedelta(hours=4))
    plant.resume([name], at=NOW - timedelta(hours=2))
    paused = plant.recorded(web_id, NOW - timedelta(hours=6), NOW)
    stamps = paused["timestamp"].to_pylist()
    assert paused.num_rows < full.num_rows
    assert not [t for t in stamps if NOW - timedelta(hours=4) < t <= NOW - timedelta(hours=2)]
    assert plant.paused() == []


def test_fast_tags_use_short_buckets_and_stay_consistent():
    plant = Plant(seed=2, n_tags=3, values_per_minute=600, now=NOW)
    web_id = plant.points[0].web_id
    tick = timedelta(microseconds=1)
    hour = plant.recorded(web_id, START, START + timedelta(hours=1) - tick)
    assert 30_000 < hour.num_rows < 42_000  # ~600 a minute
    edges = [START + timedelta(seconds=s) for s in (0, 7, 100, 1234, 3599, 3600)]
    parts = [plant.recorded(web_id, a, b - tick) for a, b in zip(edges, edges[1:])]
    assert pa.concat_tables(parts).equals(hour)
    assert plant.generator.profile(plant.points[0]).bucket_us < 3_600_000_000


def test_many_tags_generated_in_one_pass_equal_each_tag_generated_alone():
    """A stream set's tags are generated together (ValueGenerator.blocks, readers.recorded_many); every value
    must be the one the tag gets alone, over tags of every kind, rate and edge case, and a failure window."""
    from pi_platform.pitime import to_us
    from pi_platform.simulator import readers
    from pi_platform.simulator.failures import Failure

    plant = Plant(seed=4, n_tags=40, values_per_minute=2.0, edge_tags=True, now=NOW, flat_fraction=0.1)
    plant.failure_log.add(Failure("tag", plant.points[3].name, "io_timeout", to_us(START) + 3_600_000_000))
    now, start = to_us(NOW), to_us(START)
    for end, max_count in ((to_us(END), 10**9), (now + 3_600_000_000, 500), (start + 1_000_000, 10**9)):
        together = readers.recorded_many(plant, plant.points, start, end, now, max_count)
        for point, block in zip(plant.points, together):
            alone = readers.recorded(plant, point, start, end, now, max_count)
            for name in block.__dataclass_fields__:
                assert np.array_equal(getattr(block, name), getattr(alone, name), equal_nan=True), (point.name, name)
    assert sum(len(b) for b in together) > 0
