"""Channel messages from the WAL -> rows: what the collector reconciles and commits."""

from operator import itemgetter

import msgspec
import numpy as np
import orjson
import pyarrow as pa

from pi_platform.simulator import jsonfmt
from pi_platform.simulator.plant import Plant, Stream
from pi_platform.streaming.messages import _TYPED, _parse_generic, parse_records
from pi_platform.streaming.wal import WalRecord


def test_a_batch_of_messages_parses_as_each_message_alone_each_row_keeping_its_own_socket_and_receive_time():
    """Messages of a micro-batch are built together; a row attributed to the wrong socket would be de-duplicated
    against the wrong source (a value lost or doubled), so the result must equal parsing each message alone."""
    def message(web_id: str, *items: dict) -> bytes:
        return orjson.dumps({"Items": [{"WebId": web_id, "Name": web_id, "Items": list(items)}]})

    value = {"Timestamp": "2024-05-01T12:00:00Z", "Value": 1.5, "Good": True}
    records = [
        WalRecord(10, 1_000, "c1#1", message("W1", value, value)),  # PI holding the same value twice
        WalRecord(20, 2_000, "c2#1", message("W1", value, {**value, "Value": 2.5})),  # the overlap's other socket
        WalRecord(30, 3_000, "c1#1", b"{not json"),
        WalRecord(40, 4_000, "c3#2", message("W2", {**value, "Timestamp": "2024-05-01T12:00:01Z"})),
    ]
    each = [parse_records([record]) for record in records]
    together = parse_records(records)
    assert together.rows.equals(pa.concat_tables([p.rows for p in each]))
    assert together.rows["source"].to_pylist() == ["c1#1", "c1#1", "c2#1", "c2#1", "c3#2"]
    assert together.rejects.equals(pa.concat_tables([p.rejects for p in each]))
    assert together.rejects["reason"][0].as_py().startswith("unreadable channel message")

    records.append(WalRecord(50, 5_000, "c3#2", message("W2", {"Timestamp": "not a time", "Value": 1.0})))
    with_reject = parse_records(records)  # a value reject: each message is built alone, still in order
    assert with_reject.rows.equals(together.rows)
    assert with_reject.rejects.num_rows == 2


# The real capture of a streamsets/channel message (piwebapi-protocol.md §1.2: per-item Links and empty units,
# 7-digit and whole-second timestamps) and the vendor's example with quoted booleans and no per-value units.
_CAPTURE = rb'''{"Links":{},"Items":[{"WebId":"F1DPEmoryo_bV0GzilxLXH31pgjowAAAQUJDX1BJX09QU1xBSUM2ODEwNTkuUFY",
"Name":"AIC681059.PV","Path":"\\\\ABC_PI_Ops\\AIC681059.PV","Links":{},"Items":[{"Timestamp":"2022-12-09T14:06:36Z",
"Value":50.40764,"UnitsAbbreviation":"","Good":true,"Questionable":false,"Substituted":false,"Annotated":false}],
"UnitsAbbreviation":""},{"WebId":"F1DPEmoryo_bV0GzilxLXH31pgLAcAAAQUJDX1BJX09QU1xUSTE0MDEzLlBW",
"Name":"TI14013.PV","Path":"\\\\ABC_PI_Ops\\TI14013.PV","Links":{},"Items":[
{"Timestamp":"2022-12-09T14:06:38.4350128Z","Value":73.68963,
"UnitsAbbreviation":"","Good":true,"Questionable":false,"Substituted":false,"Annotated":false}],
"UnitsAbbreviation":""}]}'''
_VENDOR = rb'''{"Links":{},"Items":[{"WebId":"I1AbEDqD","Name":"Water","Links":{"Self":"https://x"},
"UnitsAbbreviation":"m",
"Items":[{"Timestamp":"2014-07-22T14:00:00Z","Value":2.3,"Good":"true","Questionable":"false","Substituted":"false"},
{"Timestamp":"2014-07-22T15:00:00Z","Value":2.5,"Good":"true","Questionable":"false","Substituted":"false"}]}]}'''


def _odd_messages() -> list[bytes]:
    """Hand-made messages at every edge of the typed decoder's declared shapes (each either side of it)."""
    ok = {"Timestamp": "2024-05-01T12:00:00.1234567Z", "Value": 1.5, "Good": True}
    state = {"Name": "Open", "Value": 1, "IsSystem": False}

    def msg(*items: object, stream: dict | None = None, **top: object) -> bytes:
        return orjson.dumps({"Links": {}, "Items": [{"WebId": "W9", "Name": "N9", "Items": list(items),
                                                    "UnitsAbbreviation": "m", **(stream or {})}], **top})

    values = [
        {**ok, "UnitsAbbreviation": ""}, {**ok, "UnitsAbbreviation": None}, {**ok, "UnitsAbbreviation": "kPa"},
        {**ok, "Value": 7}, {**ok, "Value": 2**53 + 1}, {**ok, "Value": 2**63}, {**ok, "Value": -0.0},
        {**ok, "Value": "text"}, {**ok, "Value": None}, {**ok, "Value": True}, {**ok, "Value": [1]},
        {**ok, "Value": state}, {**ok, "Value": {**state, "IsSystem": True, "Value": 248}},
        {**ok, "Value": {"Value": 1}}, {**ok, "Value": {**state, "IsSystem": None}},
        {**ok, "Value": {**state, "Value": 2**40}}, {**ok, "Value": {**state, "Value": 1.5}},
        {**ok, "Good": None}, {**ok, "Good": "true"}, {**ok, "Questionable": True, "Substituted": True,
                                                      "Annotated": True},
        {**ok, "Timestamp": None}, {**ok, "Timestamp": "yesterday"}, {**ok, "Timestamp": "2024-05-01T12:00:00Z"},
        {**ok, "Errors": [{"FieldName": "Value", "Message": ["bad"]}]}, {**ok, "Errors": None},
        {"Value": 1.0}, "not an object",
    ]
    out = [msg(v) for v in values] + [msg(ok, v) for v in values]
    out += [
        msg(ok, stream={"UnitsAbbreviation": None}), msg(ok, stream={"Name": None}), msg(stream={}),
        msg(ok, stream={"Errors": ["stream failed"]}), msg(ok, stream={"WebException": {"StatusCode": 502}}),
        msg(ok, Errors=["message failed"]), msg(ok, stream={"Items": None, "Value": ok}),
        msg(ok, stream={"Items": None, "Value": None}), msg(ok, stream={"WebId": None}),
        orjson.dumps({"Items": [{"Name": "no WebId", "Items": [ok]}]}), orjson.dumps({"Links": {}, "Items": []}),
        orjson.dumps({"Items": {}}), orjson.dumps([1]), b"{not json", b"", b'{"Items":[]} trailing',
        b'{"Items":[{"WebId":"W\\ud800","Items":[]}]}', b'{"Items":[{"WebId":"\xff","Items":[]}]}',
        b'{"Items":[{"WebId":"A","WebId":"B","Items":[{"Timestamp":"2024-05-01T12:00:00Z","Value":1e400}]}]}',
        b'{"Items":[{"WebId":"A","WebId":"B","Items":[{"Timestamp":"2024-05-01T12:00:00Z","Value":1e20}]}]}',
        b'{"Items":[{"WebId":"A","Items":[{"Timestamp":"2024-05-01T12:00:00Z","Value":100000000000000000000}]}]}',
        _CAPTURE, _VENDOR,
    ]
    return out


def _simulated_messages(values_per_message: int = 50) -> list[bytes]:
    """Channel messages as `Channel._message` renders them, from a simulated plant with its edge tags (digital,
    system states, same-timestamp groups, flags, units, odd values), ~`values_per_message` values each."""
    plant = Plant(7, 60, 60.0, edge_tags=True)
    streams = [Stream(p.web_id, p, None) for p in plant.points]
    now = plant.clock.now_us()
    start = now - 300_000_000  # five minutes: ~19,000 values, a few dozen of them corrected (Substituted)
    blocks = [plant.block(s.point, start, now, now) for s in streams]
    step = 300_000_000 * values_per_message // sum(map(len, blocks))
    pieces: dict[int, list[str]] = {}
    for s, block in zip(streams, blocks):
        if not len(block):
            continue
        slot = (block.ts - start) // step
        cuts = np.flatnonzero(np.diff(slot)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(block)]):
            pieces.setdefault(int(slot[lo]), []).append(
                f'{{"WebId":{orjson.dumps(s.canonical_web_id).decode()},"Name":{orjson.dumps(s.name).decode()},'
                f'"Path":{orjson.dumps(s.path).decode()},"Links":{{}},"Items":['
                f'{jsonfmt.timed_values(block.take(slice(lo, hi)), s.point, s.units)[1:-1]}],'
                f'"UnitsAbbreviation":{orjson.dumps(s.units).decode()}}}')
    return [f'{{"Links":{{}},"Items":[{",".join(pieces[k])}]}}'.encode() for k in sorted(pieces)]


def test_typed_decoding_gives_exactly_the_rows_and_rejects_of_the_generic_path():
    """The typed fast path must be invisible: same rows (units, states, flags, positions) and the same rejects with
    their reasons, for simulated traffic, the real capture, and messages at every edge of the declared shapes,
    whether a batch is all clean, holds an odd message, or is one message."""
    simulated = _simulated_messages()
    values = orjson.loads(b"[" + b",".join(simulated) + b"]")
    flags = {f: any(v[f] for m in values for s in m["Items"] for v in s["Items"])
             for f in ("Questionable", "Substituted", "Annotated")}
    states = [v["Value"] for m in values for s in m["Items"] for v in s["Items"] if isinstance(v["Value"], dict)]
    assert all(flags.values()) and any(map(itemgetter("IsSystem"), states))
    assert not all(map(itemgetter("IsSystem"), states))
    odd = _odd_messages()

    def records(payloads: list[bytes]) -> list[WalRecord]:
        return [WalRecord(i, 1_000 * i, f"c{i % 3}#1", p) for i, p in enumerate(payloads)]

    batches = [records(simulated[i:i + 40]) for i in range(0, len(simulated), 40)]
    batches += [records([p]) for p in odd] + [records(simulated[:5] + [p]) for p in odd] + [records(odd)]
    typed = 0
    for batch in batches:
        new, old = parse_records(batch), _parse_generic(batch)
        assert new.rows.equals(old.rows), batch[-1].payload[:300]
        assert new.rejects.equals(old.rejects), batch[-1].payload[:300]
        typed += all(_decodes_typed(r.payload) for r in batch)
    assert typed >= len(simulated) // 40  # the simulated traffic did take the typed path


def _decodes_typed(payload: bytes) -> bool:
    try:
        _TYPED.decode(payload)
    except msgspec.DecodeError:
        return False
    return True


def test_a_value_without_a_timestamp_or_stream_without_webid_is_quarantined_and_the_rest_land():
    """Such a row has no key: it once failed its micro-batch at every retry (a cast to the non-nullable schema), so
    one odd message stopped the stream. Now the message is quarantined whole, its other values stored."""
    good = {"Timestamp": "2024-05-01T00:00:01Z", "Value": 1.5, "Good": True}
    no_time = {"Timestamp": None, "Value": 2.5, "Good": True}
    messages = [
        {"Items": [{"WebId": "W1", "Name": "T1", "Items": [good, no_time]}]},
        {"Items": [{"WebId": None, "Name": "T2", "Items": [good]}, {"WebId": "W3", "Name": "T3", "Items": [good]}]},
        {"Items": [{"WebId": "W4", "Name": "T4", "Items": [good]}]},
    ]
    batch = [WalRecord(i, 1_000 * i, "c1#1", orjson.dumps(m)) for i, m in enumerate(messages)]
    for parse in (parse_records, _parse_generic):
        parsed = parse(batch)
        assert sorted(parsed.rows["web_id"].to_pylist()) == ["W1", "W3", "W4"]
        reasons = parsed.rejects["reason"].to_pylist()
        assert len(reasons) == 2
        assert "1 value(s) without timestamp" in reasons[0] and "1 value(s) without web_id" in reasons[1]
        assert orjson.loads(parsed.rejects["raw"][0].as_py()) == messages[0]  # kept whole, nothing lost
