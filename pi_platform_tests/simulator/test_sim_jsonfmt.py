"""The fast value JSON (jsonfmt) and the counter hashes behind the values (hashrng) against slow references.

jsonfmt lays values out as NUL-padded byte records and compresses them; these tests hold it to `orjson.dumps`
of dicts built one value at a time from the plant's ground truth (`Plant.recorded`'s Arrow table, timestamps
through `pitime.format_time`), on every kind of tag: numbers, integers, digital and system states, strings,
same-timestamp groups, fractional and whole-second stamps, corrected (substituted) values.
"""

from datetime import datetime, timedelta, timezone
from itertools import combinations

import numpy as np
import orjson
import pytest

from pi_platform.pitime import format_time, from_us, to_us
from pi_platform.simulator import hashrng, jsonfmt
from pi_platform.simulator.catalog import INTEGER
from pi_platform.simulator.plant import Plant

NOW = datetime(2024, 5, 2, 12, tzinfo=timezone.utc)
START = NOW - timedelta(hours=14)  # across a midnight: two dates in one list
UNITS = ("", "°C", 'a"b\\c')
ALL_FIELDS = (*jsonfmt.TIMED_VALUE_FIELDS, "Annotations", "Errors")


def _reference(plant: Plant, point, units: str) -> list[dict]:  # noqa: ANN001 - a catalog Point
    """The TimedValue dicts of the point's values from START to NOW, one at a time from the ground truth."""
    rows = plant.recorded(point.web_id, START, NOW).to_pylist()
    out = []
    for row in rows:
        if row["digital_state"] is not None:
            value = {"Name": row["digital_state"], "Value": row["digital_code"], "IsSystem": row["is_system"]}
        elif row["value_str"] is not None:
            value = row["value_str"]
        else:
            value = int(row["value"]) if point.kind == INTEGER else row["value"]
        out.append(
            {
                "Timestamp": format_time(row["timestamp"]),
                "Value": value,
                "UnitsAbbreviation": units,
                "Good": row["good"],
                "Questionable": row["questionable"],
                "Substituted": row["substituted"],
                "Annotated": row["annotated"],
            }
        )
    return out


@pytest.fixture(scope="module")
def plant() -> Plant:
    return Plant(seed=5, n_tags=30, values_per_minute=0.5, edge_tags=True, now=NOW, flat_fraction=0.1)


def _points(plant: Plant) -> list:
    """Every tag but EDGE.Dense (an hour of it is 3,600 values of a kind the others already cover)."""
    return [p for p in plant.points if p.edge != "EDGE.Dense"]


def test_value_lists_are_orjson_of_the_dicts_for_every_kind_of_tag(plant: Plant):
    kinds, long_lists = set(), 0
    for k, point in enumerate(_points(plant)):
        units = UNITS[k % len(UNITS)]
        block = plant.block(point, to_us(START), to_us(NOW))
        expected = _reference(plant, point, units)
        long_lists += len(block) >= jsonfmt.SMALL_BLOCK  # these go through the records path
        assert jsonfmt.timed_values_json(block, point, units) == orjson.dumps(expected)
        assert jsonfmt.timed_values(block, point, units) == orjson.dumps(expected).decode()
        for start in range(0, len(expected), 40):  # every value again through the small-block path
            chunk = block.take(slice(start, start + 40))
            assert jsonfmt.timed_values_json(chunk, point, units) == orjson.dumps(expected[start : start + 40])
        if expected:
            assert jsonfmt.timed_value(block.take(slice(0, 1)), point, units) == orjson.dumps(expected[0]).decode()
        kinds |= {type(v["Value"]).__name__ for v in expected}
        kinds |= {"substituted"} if any(v["Substituted"] for v in expected) else set()
        kinds |= {"fraction"} if any("." in v["Timestamp"] for v in expected) else set()
    assert {"float", "int", "dict", "str", "substituted", "fraction"} <= kinds  # the plant covered every case
    assert long_lists >= 20


def test_selected_fields_render_exactly_the_kept_fields(plant: Plant):
    subsets = [s for r in (0, 1, 2, 3, 7) for s in combinations(jsonfmt.TIMED_VALUE_FIELDS, r)]
    points = _points(plant)
    for k, fields in enumerate(subsets):
        point = points[k % len(points)]
        block = plant.block(point, to_us(START), to_us(NOW))
        expected = [{f: v for f, v in item.items() if f in fields} for item in _reference(plant, point, "m")]
        assert jsonfmt.timed_values_json(block, point, "m", fields=fields) == orjson.dumps(expected), fields
        small = block.take(slice(0, 30))
        assert jsonfmt.timed_values_json(small, point, "m", fields=fields) == orjson.dumps(expected[:30]), fields


def test_errors_and_annotations_replace_values_at_the_first_middle_and_last_positions(plant: Plant):
    point = next(p for p in plant.points if p.edge == "EDGE.SameTs")
    whole = plant.block(point, to_us(START), to_us(NOW))
    for n in (len(whole), 20):  # the records path and the small-block path
        _check_errors_and_annotations(plant, point, whole.take(slice(0, n)))


def _check_errors_and_annotations(plant: Plant, point, block) -> None:  # noqa: ANN001 - a catalog Point
    n = len(block)
    block.annotated = np.zeros(n, dtype=bool)
    block.annotated[[0, n // 2, n // 2 + 1, n - 1]] = True
    errors = np.zeros(n, dtype=bool)
    errors[[0, 3, n // 2 + 1, n - 1]] = True

    def notes(index: int, stamp: str) -> list[dict]:
        return [{"Value": f"note {index}", "CreationDate": stamp}]

    for fields in (None, ("Timestamp", "Annotations", "Errors"), ("Annotations",), ("Value", "Good")):
        expected = []
        for i, item in enumerate(_reference(plant, point, "")[:n]):
            item["Annotated"] = bool(block.annotated[i])
            if errors[i]:
                item = {**item, "Value": None, "Good": False, "Questionable": False, "Substituted": False,
                        "Annotated": False,
                        "Errors": [{"FieldName": "Value", "Message": ["Failed to read the value from the data archive."]}]}
            elif block.annotated[i] and (fields is None or "Annotations" in fields):
                item["Annotations"] = notes(i, item["Timestamp"])
            expected.append({f: v for f, v in item.items() if fields is None or f in fields})
        got = jsonfmt.timed_values_json(block, point, "", errors, notes, fields)
        assert got == orjson.dumps(expected), fields


def test_timestamps_print_as_pi_does_across_fractions_days_and_eras():
    rng = np.random.default_rng(11)
    edges = [0, 1, -1, 999_999, 1_000_000, 1_500_000, 1_000_010, -86_400_000_000, 951_782_400_000_000]
    ts = np.concatenate([np.array(edges), rng.integers(-(10**16), 10**17, 3000), rng.integers(0, 10**10, 3000) * 10**6])
    assert jsonfmt.timestamps(ts) == [format_time(from_us(int(t))) for t in ts]
    assert jsonfmt.timestamps(np.array([], dtype=np.int64)) == []


def test_flag_draws_on_hashes_equal_the_float_draws():
    rng = np.random.default_rng(2)
    counters = rng.integers(0, 2**62, 50_000)
    keys = [hashrng.key(9, t) for t in range(4)]
    rows = hashrng.hashes_many(keys, counters)
    for key, row in zip(keys, rows):
        assert np.array_equal(row, hashrng.hashes(key, counters))
    exact = np.array([0, 1, 2, 3, 2**52, 2**53 - 1], dtype=np.uint64) << np.uint64(11)  # to_unit = k / 2**53
    for h in (rows[0], exact):
        for p in (0.0, 2.0**-53, 1.5 * 2.0**-53, 0.002, 0.004, 0.3, 0.5, 1 - 2.0**-53, 1.0, 1.5):
            assert np.array_equal(hashrng.below(h, p), hashrng.to_unit(h.copy()) < p), p


def test_lists_rendered_together_equal_each_list_alone(plant: Plant):
    """A stream set's lists share numpy passes (timed_values_many): each must still be orjson of its dicts,
    whatever the mix of kinds, units, lengths (empty, small, long) and selected fields."""
    points = _points(plant)
    blocks = [plant.block(p, to_us(START), to_us(NOW)) for p in points]
    blocks[1], blocks[2] = blocks[1].take(slice(0, 0)), blocks[2].take(slice(0, 5))
    units = [UNITS[k % len(UNITS)] for k in range(len(points))]
    references = [_reference(plant, p, u)[: len(b)] for p, u, b in zip(points, units, blocks)]
    client = ("Timestamp", "Value", "Good", "Questionable", "Substituted", "Annotated")  # the client's selection
    for fields in (None, client, ("Value",), ("Timestamp", "UnitsAbbreviation"), ()):
        texts = jsonfmt.timed_values_many(blocks, points, units, fields)
        for point, expected, text in zip(points, references, texts):
            kept = [{f: v for f, v in item.items() if fields is None or f in fields} for item in expected]
            assert text == orjson.dumps(kept), (point.name, fields)


def test_key_and_single_draws_equal_the_array_hash():
    """hashrng.key/uniform1 run on Python integers; they must equal the numpy splitmix they stand for."""
    rng = np.random.default_rng(5)
    for parts in [(), (0,), (-1,), (42, 7), (2**64 - 1, 3, 99), *[tuple(rng.integers(-2**62, 2**62, 3).tolist())
                                                                   for _ in range(200)]]:
        acc = np.zeros(1, dtype=np.uint64)
        for part in parts:
            acc = hashrng._mix_in_place(acc ^ np.uint64(((part & 0xFFFFFFFFFFFFFFFF) + 0x9E3779B97F4A7C15) % 2**64))
        assert hashrng.key(*parts) == acc[0]
        assert hashrng.uniform1(*parts) == hashrng.uniform(acc[0], np.zeros(1, dtype=np.uint64))[0]


def test_per_value_probabilities_draw_like_one_probability_each():
    h = hashrng.hashes(hashrng.key(3), np.arange(20_000))
    probabilities = np.array([0.0, 2.0**-53, 0.004, 0.3, 1 - 2.0**-53, 1.0, 1.5, -0.1])
    p = probabilities[np.arange(len(h)) % len(probabilities)]
    expected = np.concatenate([hashrng.below(h[k :: len(probabilities)], q) for k, q in enumerate(probabilities)])
    order = np.concatenate([np.arange(len(h))[k :: len(probabilities)] for k in range(len(probabilities))])
    assert np.array_equal(hashrng.below(h, p)[order], expected)
