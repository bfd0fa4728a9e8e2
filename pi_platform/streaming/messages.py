"""Channel messages (raw JSON from the WAL) -> Arrow rows, using the client's column builder.

A channel message has the `streamsets/end` shape: `Items` = streams, each with its own `Items` (or, as
the swagger claims for streamsets, a single `Value` object). Each row also gets the message's receive
time and its source (connection attempt), which de-duplication of overlapping sockets needs.
"""

from dataclasses import dataclass

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.client.columns import StreamPage, build_batch
from pi_platform.client.recorded_json import ChannelMessage
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


_TYPED = msgspec.json.Decoder(ChannelMessage)


def parse_records(records: list[WalRecord]) -> ParsedMessages:
    """Rows and rejects of many messages; a message that is not valid channel JSON is rejected whole.

    When every message of the batch is clean it decodes typed, as recorded pages do (`recorded_json`): ~18 % less
    CPU than orjson's dicts on live-like batches (~50 values a message over 1,000 streams). Anything else in the
    batch (a message with Errors or of another shape, malformed JSON, a value the build rejects) sends the whole
    batch down the generic path below, which keeps each reject and its reason: odd messages are rare, and one
    build cannot mix typed and dict items.
    """
    try:
        pages = [_typed_pages(_TYPED.decode(record.payload)) for record in records]
        counts = [sum(len(page.items) for page in record_pages) for record_pages in pages]
        batch, _ = build_batch([page for record_pages in pages for page in record_pages])
    except (msgspec.DecodeError, *_BUILD_ERRORS):  # DecodeError includes ValidationError (a shape that differs)
        return _parse_generic(records)
    if batch.rejects.num_rows or batch.values.num_rows != sum(counts):
        return _parse_generic(records)
    rows = _tagged(batch.values, records, counts).cast(CHANNEL_SCHEMA)
    return ParsedMessages(rows, REJECT_SCHEMA.empty_table())


def _typed_pages(message: ChannelMessage) -> list[StreamPage]:
    return [StreamPage(s.WebId, s.Name, s.UnitsAbbreviation, s.Items) for s in message.Items]


def _parse_generic(records: list[WalRecord]) -> ParsedMessages:
    """Messages as orjson's dicts: any shape, each odd value or message kept as a reject with its reason.

    All messages' streams go through one column build: building per message cost more than the values in it
    at live rates (many small messages per micro-batch). Only when that build rejects a value or fails is the
    batch built message by message (from the pages already parsed), which attributes each reject or failure to
    its own message.
    """
    readable: list[tuple[WalRecord, list[StreamPage]]] = []
    rejects: list[pa.Table] = []
    for record in records:
        try:
            readable.append((record, _pages(orjson.loads(record.payload))))
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            rejects.append(_whole_message_reject(record, f"unreadable channel message: {exc}"))
    tables: list[pa.Table] = []
    counts = [sum(len(page.items) for page in pages) for _, pages in readable]
    try:
        batch, _ = build_batch([page for _, pages in readable for page in pages])
        together = (not batch.rejects.num_rows and batch.values.num_rows == sum(counts)  # a row per item: in order
                    and _keyless(batch.values) is None)
    except _BUILD_ERRORS:
        together = False
    if together:
        tables.append(_tagged(batch.values, [record for record, _ in readable], counts))
    else:
        for record, pages in readable:
            try:
                batch, _ = build_batch(pages)
            except _BUILD_ERRORS as exc:
                rejects.append(_whole_message_reject(record, f"unreadable channel message: {exc}"))
                continue
            values = batch.values
            if (keyless := _keyless(values)) is not None:  # kept whole in the quarantine; its other values land
                reason, stored = keyless
                rejects.append(_whole_message_reject(record, f"unreadable channel message: {reason}"))
                values = values.filter(stored)
            tables.append(_tagged(values, [record], [values.num_rows]))
            if batch.rejects.num_rows:
                rejects.append(batch.rejects)
    rows = pa.concat_tables(tables).cast(CHANNEL_SCHEMA) if tables else CHANNEL_SCHEMA.empty_table()
    bad = pa.concat_tables(rejects).cast(REJECT_SCHEMA) if rejects else REJECT_SCHEMA.empty_table()
    return ParsedMessages(rows, bad)


_BUILD_ERRORS = (ValueError, KeyError, TypeError, AttributeError)


def _keyless(values: pa.Table) -> tuple[str, pa.Array] | None:
    """Why some rows cannot be stored (a value with a null timestamp, a stream with a null WebId: the table's key),
    and the mask of those that can; None when all can. Such a row once failed its micro-batch at every retry, so one
    odd message stopped the stream."""
    missing = [(c, values[c].null_count) for c in ("web_id", "timestamp") if values[c].null_count]
    if not missing:
        return None
    stored = pc.and_(pc.is_valid(values["web_id"]), pc.is_valid(values["timestamp"]))
    return ", ".join(f"{n} value(s) without {c}" for c, n in missing), stored


def _tagged(values: pa.Table, records: list[WalRecord], counts: list[int]) -> pa.Table:
    """`values` (the rows of `records`, `counts[i]` of them from record i, in order) with each row's receive time
    and source."""
    record_of_row = pa.array(np.repeat(np.arange(len(records)), counts), pa.int64())
    received = pa.array([r.received_at_ns // 1000 for r in records], pa.int64()).cast(TIMESTAMP)
    sources = pa.array([r.source for r in records], pa.string())
    return (values.append_column(RECEIVED_AT, received.take(record_of_row))
            .append_column("source", sources.take(record_of_row)))


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
