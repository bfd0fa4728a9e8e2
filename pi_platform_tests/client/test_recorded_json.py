"""The typed fast path for streamsets/recorded pages builds exactly what the generic path builds, and hands
every body it cannot type to the generic path (which keeps odd items as rejects with their reasons)."""

from datetime import timedelta

import httpx
import msgspec
import orjson
import pytest

from pi_platform.client import PIWebAPIConfig, recorded
from pi_platform.client.columns import StreamPage, build_batch
from pi_platform.client.recorded import RECORDED_FIELDS
from pi_platform.client.recorded_json import RecordedPage, decode_recorded
from pi_platform.pitime import format_time
from pi_platform.value_columns import sort_values
from pi_platform_tests.client.support import ground_truth, read_recorded, settled_day

FLAGS = {"Good": True, "Questionable": False, "Substituted": False, "Annotated": False}
RUNNING = {"Name": "Running", "Value": 1, "IsSystem": False}
SHUTDOWN = {"Name": "Shutdown", "Value": 254, "IsSystem": True}


def _item(ts: str, value: object, **extra: object) -> dict:
    return {"Timestamp": ts, "Value": value, **FLAGS, **extra}


def _body(*streams: tuple[str, list]) -> bytes:
    return orjson.dumps({"Items": [{"WebId": w, "Name": f"tag {w}", "UnitsAbbreviation": "m", "Items": items}
                                   for w, items in streams]})


def _rows(body: bytes, decode) -> tuple:  # noqa: ANN001 - decode_recorded or orjson.loads
    data = decode(body)
    if isinstance(data, RecordedPage):
        pages = [StreamPage(s.WebId, s.Name, s.UnitsAbbreviation, s.Items) for s in data.Items]
    else:
        pages = [StreamPage(s["WebId"], s["Name"], s["UnitsAbbreviation"], s["Items"]) for s in data["Items"]]
    batch, tails = build_batch(pages)
    return sort_values(batch.values), batch.rejects, tails


def test_every_shape_builds_the_same_rows_on_both_paths() -> None:
    ts = "2024-05-01T00:00:00Z"
    body = _body(
        ("W1", [_item(ts, 12.5), _item(ts, 12.5), _item(ts, SHUTDOWN, Good=False), _item("2024-05-01T00:00:01.4350128Z", 7),
                _item("2024-05-01T00:00:02Z", None)]),
        ("W2", [_item(ts, RUNNING), _item("2024-05-01T00:01:00Z", "Batch A-17", Questionable=True, Annotated=True),
                {"Timestamp": "2024-05-01T00:02:00Z", "Value": 3.0}]),  # flags left out: PI's defaults apply
        ("W3", []),
    )
    assert isinstance(decode_recorded(body), RecordedPage)
    typed, generic = _rows(body, decode_recorded), _rows(body, orjson.loads)
    assert typed[0].equals(generic[0]) and typed[0].num_rows == 8
    assert typed[2] == generic[2]  # the same-timestamp carry for the next page
    rows = typed[0].to_pylist()
    assert [(r["value"], r["value_str"], r["digital_code"], r["is_system"]) for r in rows if r["web_id"] == "W2"] == [
        (1.0, "Running", 1, False), (None, "Batch A-17", None, False), (3.0, None, None, False)]


@pytest.mark.parametrize("odd", [
    _item("2024-05-01T00:00:00Z", True),  # a boolean Value: not one of PI's value shapes
    _item("2024-05-01T00:00:00Z", {"Value": 3}),  # a state without a Name
    _item("2024-05-01T00:00:00Z", 1.0, Good="true"),  # a quoted flag, as the vendor docs sometimes show
    {"Timestamp": None, "Value": 1.0},
    _item("2024-05-01T00:00:00Z", 0, Errors=[{"FieldName": "Value", "Message": ["Archive offline"]}]),
])
def test_a_body_the_types_do_not_fit_takes_the_generic_path(odd: dict) -> None:
    body = _body(("W1", [_item("2024-05-01T00:00:00Z", 1.0), odd]))
    assert isinstance(decode_recorded(body), dict)
    values, rejects, _ = _rows(body, decode_recorded)
    assert values.num_rows + rejects.num_rows == 2  # nothing lost on the generic path either


def test_web_exceptions_stream_errors_and_malformed_json_are_left_to_the_generic_path() -> None:
    assert isinstance(decode_recorded(b'{"WebException": {"StatusCode": 502, "Errors": ["down"]}}'), dict)
    failed = {"WebId": "W1", "Items": [], "WebException": {"StatusCode": 502, "Errors": ["archive went away"]}}
    assert isinstance(decode_recorded(orjson.dumps({"Items": [failed]})), dict)
    assert isinstance(decode_recorded(orjson.dumps({"Items": [{"WebId": "W1", "Errors": ["Point not found"]}]})), dict)
    no_errors = _body(("W1", [_item("2024-05-01T00:00:00Z", 1.0, Errors=None)]))  # null: nothing to keep
    assert isinstance(decode_recorded(no_errors), RecordedPage)
    with pytest.raises(orjson.JSONDecodeError):  # what the transport retries as "malformed JSON"
        decode_recorded(_body(("W1", [_item("2024-05-01T00:00:00Z", 1.0)]))[:-7])


def test_an_unreadable_timestamp_on_the_typed_path_is_rejected_with_its_json() -> None:
    body = _body(("W1", [_item("yesterday-ish", 1.0), _item("2024-05-01T00:00:00Z", 2.0)]))
    assert isinstance(decode_recorded(body), RecordedPage)
    values, rejects, _ = _rows(body, decode_recorded)
    assert values.column("value").to_pylist() == [2.0]
    [reject] = rejects.to_pylist()
    assert "Timestamp" in reject["reason"] and msgspec.json.decode(reject["raw"])["Timestamp"] == "yesterday-ish"


def test_simulator_pages_take_the_typed_path_and_equal_the_generic_one(simulator) -> None:
    plant = simulator.plant
    web_ids = [p.web_id for p in plant.points][:40]
    start, _ = settled_day(plant)
    params = [("webId", w) for w in web_ids] + [
        ("startTime", format_time(start)), ("endTime", format_time(start + timedelta(hours=6))),
        ("maxCount", 100_000), ("selectedFields", RECORDED_FIELDS)]
    body = httpx.get(f"{simulator.base_url}/streamsets/recorded", params=params, timeout=60).content
    assert isinstance(decode_recorded(body), RecordedPage)
    typed, generic = _rows(body, decode_recorded), _rows(body, orjson.loads)
    assert typed[0].equals(generic[0]) and typed[0].num_rows > 1000
    assert typed[0].column("digital_state").null_count < typed[0].num_rows  # states went through it too


def test_the_reader_uses_the_typed_path_and_still_equals_ground_truth(simulator, monkeypatch) -> None:
    decoded: list[type] = []

    def spying_decode(content: bytes):  # noqa: ANN202
        data = decode_recorded(content)
        decoded.append(type(data))
        return data

    monkeypatch.setattr(recorded, "decode_recorded", spying_decode)
    plant = simulator.plant
    web_ids = [p.web_id for p in plant.points][:25]
    start, end = settled_day(plant)
    batch, _ = read_recorded(PIWebAPIConfig(url=simulator.base_url, page_size=500), web_ids, start, end)
    assert RecordedPage in decoded
    assert sort_values(batch.values).equals(ground_truth(plant, web_ids, start, end))
