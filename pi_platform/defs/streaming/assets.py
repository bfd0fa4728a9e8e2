"""`stream_values`: an asset the collector (not a Dagster run) writes; Dagster observes, checks and compacts it."""

import dagster as dg

from pi_platform.defs.conventions import KINDS, OWNERS
from pi_platform.streaming.messages import STREAM_SCHEMA
from pi_platform.streaming.sink import STREAM_TABLE

_DOCS = {
    "web_id": "stream (point or attribute) WebID",
    "name": "tag or attribute name",
    "timestamp": "value time, UTC, microseconds",
    "position": "0-based order among the stream's values at the same timestamp (PI's order)",
    "value": "numeric value; digital states carry their code",
    "value_str": "String point value; digital state name",
    "digital_state": "digital or system state name",
    "digital_code": "digital or system state code",
    "is_system": "value is a system state (Good is false)",
    "good": "PI Good flag",
    "questionable": "PI Questionable flag",
    "substituted": "PI Substituted flag: the value was corrected after it was first written",
    "annotated": "value has an annotation",
    "units": "units abbreviation",
    "received_at": "when the collector received the value (channel) or read it (backfill, verification)",
}

STREAM_VALUES = dg.AssetSpec(
    key=STREAM_TABLE,
    group_name="streaming",
    kinds=KINDS,
    owners=OWNERS,
    description=(
        "Live PI values from WebSocket channels, committed by `pi-platform stream` in exactly-once micro-batches "
        "(key web_id, timestamp, position; corrections replace the value PI replaced). Not partitioned; "
        "compacted hourly. Materialisations are reported by the stream_collector sensor, one per Delta commit."
    ),
    metadata={
        "dagster/table_name": STREAM_TABLE,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type), description=_DOCS[f.name],
                                    constraints=dg.TableColumnConstraints(nullable=f.nullable))
                     for f in STREAM_SCHEMA]
        ),
    },
)
