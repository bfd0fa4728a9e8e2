"""Channel messages from the WAL -> rows: what the collector reconciles and commits."""

import orjson
import pyarrow as pa

from pi_platform.streaming.messages import parse_records
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
