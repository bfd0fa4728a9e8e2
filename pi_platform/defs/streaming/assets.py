"""`stream_values`: an asset the collector (not a Dagster run) writes; Dagster observes, checks and compacts it.

Its schema and column docs are the table's declaration in storage/tables.py, shown in the UI as they are.
"""

import dagster as dg

from pi_platform.defs.conventions import KINDS, OWNERS
from pi_platform.storage import tables

STREAM_VALUES = dg.AssetSpec(
    key=tables.STREAM_VALUES.name,
    group_name="streaming",
    kinds=KINDS,
    owners=OWNERS,
    description=tables.STREAM_VALUES.description
    + " Materialisations are reported by the stream_collector sensor at a bounded cadence.",
    metadata={
        "dagster/table_name": tables.STREAM_VALUES.name,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type), description=(f.metadata or {}).get(b"doc", b"").decode(),
                                    constraints=dg.TableColumnConstraints(nullable=f.nullable))
                     for f in tables.STREAM_VALUES.schema]
        ),
    },
)
