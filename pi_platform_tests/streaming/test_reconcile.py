"""Reconciliation rules: authoritative reads win, late groups are verified, overlapping sockets de-duplicate."""

import pyarrow as pa

from pi_platform.streaming.messages import CHANNEL_SCHEMA, STREAM_SCHEMA
from pi_platform.streaming.reconcile import compose, late_groups


def _rows(spec: list[tuple], schema: pa.Schema = CHANNEL_SCHEMA) -> pa.Table:
    """spec: (web_id, ts_us, value, source, substituted, position)"""
    n = len(spec)
    data = {
        "web_id": [s[0] for s in spec],
        "name": [s[0].upper() for s in spec],
        "timestamp": pa.array([s[1] for s in spec], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "position": pa.array([s[5] if len(s) > 5 else 0 for s in spec], pa.int32()),
        "value": [s[2] for s in spec],
        "value_str": pa.nulls(n, pa.string()),
        "digital_state": pa.nulls(n, pa.string()),
        "digital_code": pa.nulls(n, pa.int32()),
        "is_system": [False] * n,
        "good": [True] * n,
        "questionable": [False] * n,
        "substituted": [s[4] if len(s) > 4 else False for s in spec],
        "annotated": [False] * n,
        "units": pa.nulls(n, pa.string()),
        "received_at": pa.array([0] * n, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    }
    if "source" in schema.names:
        data["source"] = [s[3] for s in spec]
    return pa.Table.from_pydict(data, schema=schema)


def _summary(table: pa.Table) -> list[tuple]:
    rows = table.sort_by([("web_id", "ascending"), ("timestamp", "ascending"), ("position", "ascending")])
    return list(zip(rows["web_id"].to_pylist(), rows["timestamp"].cast(pa.int64()).to_pylist(),
                    rows["position"].to_pylist(), rows["value"].to_pylist(), strict=True))


def test_overlapping_sockets_count_once_but_true_repeats_survive():
    channel = _rows([
        ("a", 10, 1.0, "c1#1"), ("a", 10, 1.0, "c2#1"),  # same value from old and new socket: once
        ("a", 20, 5.0, "c1#1"), ("a", 20, 5.0, "c1#1"),  # PI holds 5.0 twice at t=20: both stay
        ("a", 20, 5.0, "c2#1"), ("a", 20, 5.0, "c2#1"),  # ...and the overlap copy of that pair goes
        ("b", 20, 7.0, "c2#1"),
    ])
    plan = compose(channel, [], late_groups(channel, {}), {})
    assert _summary(plan.rows) == [("a", 10, 0, 1.0), ("a", 20, 0, 5.0), ("a", 20, 1, 5.0), ("b", 20, 0, 7.0)]
    assert not plan.needs_merge


def test_late_and_corrected_groups_are_verified_and_replaced_by_what_pi_holds():
    hwm = {"a": 100}
    channel = _rows([
        ("a", 90, 1.0, "c1#1"),  # at or below the high-water mark: may collide with committed rows
        ("a", 150, 2.0, "c1#1"),  # fresh
        ("a", 160, 3.5, "c1#1", True),  # a correction (Substituted) of a value not committed yet
        ("a", 160, 3.0, "c1#1"),  # the original it corrects, in the same batch
    ])
    late = late_groups(channel, hwm)
    assert sorted(late.tolist()) == [("a", 90), ("a", 160)]
    # PI now holds two values at 90 (a group split across messages) and the corrected value at 160.
    verified = _rows([("a", 90, 1.0, "", False, 0), ("a", 90, 1.5, "", False, 1), ("a", 160, 3.5, "", True, 0)],
                     STREAM_SCHEMA)
    plan = compose(channel, [verified], late, hwm)
    assert _summary(plan.rows) == [("a", 90, 0, 1.0), ("a", 90, 1, 1.5), ("a", 150, 0, 2.0), ("a", 160, 0, 3.5)]
    assert plan.needs_merge


def test_group_pi_no_longer_holds_is_dropped_and_later_read_wins():
    hwm = {"a": 100}
    channel = _rows([("a", 50, 9.0, "c1#1")])
    late = late_groups(channel, hwm)
    plan = compose(channel, [], late, hwm)  # verification found nothing at t=50
    assert plan.rows.num_rows == 0
    older = _rows([("a", 200, 1.0, "")], STREAM_SCHEMA)
    newer = _rows([("a", 200, 1.25, "", True)], STREAM_SCHEMA)
    plan = compose(_rows([]), [older, newer], late_groups(_rows([]), hwm), hwm)
    assert _summary(plan.rows) == [("a", 200, 0, 1.25)]
