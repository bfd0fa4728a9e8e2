"""JSON value items -> VALUE_SCHEMA columns and rejects, on the value shapes PI Web API documents."""

import orjson
import pyarrow as pa

from pi_platform.client.columns import StreamPage, build_batch, parse_timestamps
from pi_platform.value_columns import REJECT_SCHEMA, VALUE_SCHEMA

FLAGS = {"Good": True, "Questionable": False, "Substituted": False, "Annotated": False}


def _item(ts: str, value: object, **extra: object) -> dict:
    return {"Timestamp": ts, "Value": value, "UnitsAbbreviation": "m", **FLAGS, **extra}


def test_every_value_shape_lands_in_its_column() -> None:
    items = [
        _item("2024-05-01T00:00:00Z", 12.5),
        _item("2024-05-01T00:00:00Z", {"Name": "Shutdown", "Value": 254, "IsSystem": True}, Good=False),
        _item("2024-05-01T00:00:01.4350128Z", {"Name": "Running", "Value": 1, "IsSystem": False}),
        _item("2024-05-01T00:00:02Z", "Batch A-17 started", Questionable=True, Substituted=True, Annotated=True),
        _item("2024-05-01T00:00:03Z", 7),
    ]
    batch, _ = build_batch([StreamPage("W1", "tag1", "m", items)])
    assert batch.values.schema == VALUE_SCHEMA and batch.rejects.num_rows == 0
    rows = batch.values.to_pylist()
    assert [r["position"] for r in rows] == [0, 1, 0, 0, 0]
    assert rows[0]["value"] == 12.5 and rows[0]["digital_state"] is None and rows[0]["is_system"] is False
    assert (rows[1]["value"], rows[1]["value_str"], rows[1]["digital_state"], rows[1]["digital_code"]) == (
        None, "Shutdown", "Shutdown", 254)
    assert rows[1]["is_system"] is True and rows[1]["good"] is False
    assert (rows[2]["value"], rows[2]["digital_state"], rows[2]["digital_code"], rows[2]["is_system"]) == (
        1.0, "Running", 1, False)
    assert rows[2]["timestamp"].microsecond == 435012  # 7th digit truncated, never rounded into the next µs
    assert rows[3]["value_str"] == "Batch A-17 started" and rows[3]["value"] is None
    assert rows[3]["questionable"] and rows[3]["substituted"] and rows[3]["annotated"]
    assert rows[4]["value"] == 7.0 and rows[4]["units"] == "m"


def test_bad_items_go_to_rejects_with_reason_and_raw_json() -> None:
    bad_error = _item("2024-05-01T00:00:01Z", 0, Errors=[{"FieldName": "Value", "Message": ["Archive offline"]}])
    bad_time = _item("yesterday-ish", 1.0)
    bad_value = _item("2024-05-01T00:00:02Z", [1, 2])
    good = _item("2024-05-01T00:00:03Z", 3.0)
    batch, _ = build_batch([StreamPage("W1", "tag1", "m", [bad_error, bad_time, bad_value, good])])
    assert batch.values.column("value").to_pylist() == [3.0]
    assert batch.rejects.schema == REJECT_SCHEMA
    rejects = batch.rejects.to_pylist()
    assert [orjson.loads(r["raw"]) for r in rejects] == [bad_error, bad_time, bad_value]
    assert "Errors" in rejects[0]["reason"] and "Archive offline" in rejects[0]["reason"]
    assert "Timestamp" in rejects[1]["reason"] and "Value" in rejects[2]["reason"]
    assert {r["web_id"] for r in rejects} == {"W1"}


def test_position_continues_across_pages_and_streams_are_independent() -> None:
    ts = "2024-05-01T00:00:00Z"
    first, tails = build_batch([StreamPage("W1", "a", None, [_item(ts, 1), _item(ts, 2)]),
                                StreamPage("W2", "b", None, [_item(ts, 9)])])
    assert first.values.column("position").to_pylist() == [0, 1, 0]
    second, tails = build_batch([StreamPage("W1", "a", None, [_item(ts, 3), _item("2024-05-01T00:00:01Z", 4)],
                                            tails[0].ts, tails[0].n)])
    assert second.values.column("position").to_pylist() == [2, 0]
    assert tails[0].n == 1


def test_window_end_is_left_to_the_next_window() -> None:
    items = [_item("2024-05-01T23:59:59Z", 1), _item("2024-05-02T00:00:00Z", 2), _item("2024-05-02T00:00:00Z", 3)]
    end_us = 1714608000 * 1_000_000
    batch, _ = build_batch([StreamPage("W1", "a", None, items)], end_exclusive_us=end_us)
    assert batch.values.column("value").to_pylist() == [1.0]


def test_timestamps_beyond_nanosecond_range_still_parse() -> None:
    parsed, bad = parse_timestamps(["9999-12-31T23:59:59Z", "2024-01-01T00:00:00.1234567Z", "nonsense", None])
    assert bad is not None and bad.tolist() == [False, False, True, True]
    assert parsed.type == pa.timestamp("us", tz="UTC")
    assert parsed[0].as_py().year == 9999 and parsed[1].as_py().microsecond == 123456


def test_rejected_items_keep_their_place_in_a_same_timestamp_group() -> None:
    ts = "2024-05-01T00:00:00Z"
    errors = [{"FieldName": "Value", "Message": ["x"]}]
    batch, _ = build_batch([StreamPage("W1", "a", None, [_item(ts, 1), _item(ts, 0, Errors=errors), _item(ts, 3)])])
    assert batch.values.column("position").to_pylist() == [0, 2]  # stable keys when the error clears later
    assert batch.rejects.num_rows == 1
