"""Channel messages (raw JSON from the WAL) -> Arrow rows, using the client's column builder.

A channel message has the `streamsets/end` shape: `Items` = streams, each with its own `Items` (or, as
the swagger claims for streamsets, a single `Value` object). Each row also gets the message's receive
time and its source (connection attempt), which de-duplication of overlapping sockets needs.
"""

from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa

from pi_platform.client.columns import StreamPage, build_batch
from pi_platform.streaming.wal import WalRecord
from pi_platform.storage.tables import STREAM_VALUES
from pi_platform.value_columns import REJECT_SCHEMA, TIMESTAMP, VALUE_SCHEMA

# What stream_values holds (declared in storage/tables.py): the value columns plus when the value was received.
STREAM_SCHEMA = STREAM_VALUES.schema
RECEIVED_AT = STREAM_SCHEMA.field("received_at")
# Channel rows carry where they came from until reconciliation drops it.
CHANNEL_SCHEMA = pa.schema([*STREAM_SCHEMA, pa.field("source", pa.string(), nullable=False)])


@dataclass(frozen=True)
class ParsedMessages:
    rows: pa.Table  # CHANNEL_SCHEMA, in arrival order
    rejects: pa.Table  # REJECT_SCHEMA


def _pages(message: object) -> list[StreamPage]:
    if not isinstance(message, dict) or not isinstance(message.get("Items"), list):
        raise ValueError("not a channel message (no Items list)")
    pages = []
    for stream in message["Items"]:
        items = stream.get("Items")
        if items is None:
            value = stream.get("Value")
            items = [value] if isinstance(value, dict) else []
        pages.append(StreamPage(stream["WebId"], stream.get("Name") or "", stream.get("UnitsAbbreviation"), items))
    return pages


def parse_records(records: list[WalRecord]) -> ParsedMessages:
    """Rows and rejects of many messages; a message that is not valid channel JSON is rejected whole.

    All messages' streams go through one column build: building per message cost more than the values in it
    at live rates (many small messages per micro-batch). Only when that build rejects a value or fails is the
    batch built message by message, which attributes each reject or failure to its own message.
    """
    pages: list[StreamPage] = []
    counts: list[int] = []
    readable: list[WalRecord] = []
    rejects: list[pa.Table] = []
    for record in records:
        try:
            own = _pages(orjson.loads(record.payload))
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            rejects.append(_whole_message_reject(record, f"unreadable channel message: {exc}"))
            continue
        pages.extend(own)
        counts.append(sum(len(page.items) for page in own))
        readable.append(record)
    try:
        batch, _ = build_batch(pages)
    except (ValueError, KeyError, TypeError, AttributeError):
        return _parse_each(records)
    record_of_row = pa.array(np.repeat(np.arange(len(readable)), counts), pa.int64())
    if batch.rejects.num_rows or batch.values.num_rows != len(record_of_row):
        return _parse_each(records)
    received = pa.array([r.received_at_ns // 1000 for r in readable], pa.int64()).cast(TIMESTAMP)
    sources = pa.array([r.source for r in readable], pa.string())
    rows = (batch.values.append_column(RECEIVED_AT, received.take(record_of_row))
            .append_column("source", sources.take(record_of_row)).cast(CHANNEL_SCHEMA))
    bad = pa.concat_tables(rejects).cast(REJECT_SCHEMA) if rejects else REJECT_SCHEMA.empty_table()
    return ParsedMessages(rows, bad)


def _parse_each(records: list[WalRecord]) -> ParsedMessages:
    tables: list[pa.Table] = []
    rejects: list[pa.Table] = []
    for record in records:
        received = pa.scalar(record.received_at_ns // 1000, pa.int64()).cast(TIMESTAMP)
        try:
            batch, _ = build_batch(_pages(orjson.loads(record.payload)))
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            rejects.append(_whole_message_reject(record, f"unreadable channel message: {exc}"))
            continue
        n = batch.values.num_rows
        if n:
            tables.append(
                batch.values.append_column(RECEIVED_AT, pa.array(np.full(n, received.value), TIMESTAMP))
                .append_column("source", pa.array([record.source] * n, pa.string()))
            )
        if batch.rejects.num_rows:
            rejects.append(batch.rejects)
    rows = pa.concat_tables(tables).cast(CHANNEL_SCHEMA) if tables else CHANNEL_SCHEMA.empty_table()
    bad = pa.concat_tables(rejects).cast(REJECT_SCHEMA) if rejects else REJECT_SCHEMA.empty_table()
    return ParsedMessages(rows, bad)


def _whole_message_reject(record: WalRecord, reason: str) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "web_id": [None],
            "name": [None],
            "reason": [reason],
            "raw": [record.payload.decode("utf-8", "replace")],
            "timestamp": pa.nulls(1, TIMESTAMP),
        },
        schema=REJECT_SCHEMA,
    )


def with_received_at(values: pa.Table, received_at_us: int) -> pa.Table:
    """VALUE_SCHEMA rows read from PI (backfill, verification) -> STREAM_SCHEMA."""
    column = pa.array(np.full(values.num_rows, received_at_us), pa.int64()).cast(TIMESTAMP)
    return values.select(VALUE_SCHEMA.names).cast(VALUE_SCHEMA).append_column(RECEIVED_AT, column)
