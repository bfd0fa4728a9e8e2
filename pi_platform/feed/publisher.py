"""What a message-bus publisher must do for the feed, and the messages it is given.

The fan-out loop (`publish.run_publisher`) only needs three things from a bus, so a Kafka producer fits behind the
same protocol as MQTT: `publish` hands over a batch without waiting, `flush` waits for the broker's
acknowledgements and says how many are still missing, `close` ends the session. The loop advances its checkpoint
only after `flush` returned 0, which is what makes delivery at-least-once whatever the bus.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
import pyarrow as pa

from pi_platform.feed.records import to_records
from pi_platform.feed.topics import TopicMap

# Row columns carried in a payload ("timestamp" travels as "time"); web_id and name identify the stream.
PAYLOAD_COLUMNS = ("web_id", "name", "timestamp", "position", "value", "value_str", "digital_state", "digital_code",
                   "is_system", "good", "questionable", "substituted", "annotated", "units")


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool  # the newest value of its stream: the broker keeps it for late subscribers
    key: str  # the stream's WebID: a partition key for buses that have them (Kafka)


class Publisher(Protocol):
    def publish(self, messages: Sequence[Message]) -> None:
        """Queue `messages` for sending, in order, without waiting for acknowledgements."""

    def flush(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for every queued message to be acknowledged; return how many are not yet."""

    def close(self) -> None:
        """Stop: unacknowledged messages may be lost here, which the checkpoint accounts for."""


class NewestTracker:
    """Which rows are their stream's newest value, so only those replace the retained message.

    Seeded with every stream's newest committed (timestamp) at start: a late backfill or a correction of an old
    value is published, but must not replace the retained current value with an older one."""

    def __init__(self, newest_us: dict[str, int]) -> None:
        self.newest_us = dict(newest_us)

    def flags(self, rows: pa.Table) -> list[bool]:
        retain = []
        stamps = rows["timestamp"].cast(pa.int64()).to_pylist()
        for web_id, stamp in zip(rows["web_id"].to_pylist(), stamps, strict=True):
            newest = stamp >= self.newest_us.get(web_id, stamp)
            if newest:
                self.newest_us[web_id] = stamp
            retain.append(newest)
        return retain


def to_messages(rows: pa.Table, topics: TopicMap, newest: NewestTracker) -> list[Message]:
    """One message per row, in feed order; payload JSON `{"time", "value", ..., flags}`."""
    records = to_records(rows.select(list(PAYLOAD_COLUMNS)))
    retain = newest.flags(rows)
    out = []
    for record, topic, keep in zip(records, topics.topics(rows), retain, strict=True):
        record["time"] = record.pop("timestamp")
        out.append(Message(topic, orjson.dumps(record), keep, record["web_id"]))
    return out
