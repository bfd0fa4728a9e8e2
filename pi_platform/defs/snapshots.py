"""Writing a daily snapshot table (AF hierarchy, point catalog) for a run's window.

PI Web API serves the inventory as it is now, so a run writes what it read under every day of its window:
one run for a range and one run per day leave the same table, and a rerun replaces the day.
"""

from collections.abc import Callable
from datetime import date

import dagster as dg
import pandera.pandas as pandera
import pyarrow as pa

from pi_platform.defs import checks
from pi_platform.defs.metadata import table_metadata
from pi_platform.batch.window import DayWindow
from pi_platform.storage import DeltaStore, replace_quarantine, split_valid
from pi_platform.storage.tables import TableSpec


def write_snapshot(
    context: dg.AssetExecutionContext,
    store: DeltaStore,
    spec: TableSpec,
    schema: pandera.DataFrameSchema,
    window: DayWindow,
    build: Callable[[date], pa.Table],
) -> dg.MaterializeResult:
    """Build the snapshot for each day of the window, validate, replace the window, report, check."""
    days = pa.concat_tables([build(day) for day in window.days])
    split = split_valid(days, schema)
    info = store.overwrite_range(
        spec.name, split.valid, partition_column=spec.partition_column, start=window.first, end=window.end
    )
    replace_quarantine(
        store, split.rejects, table_name=spec.name, start=window.first, end=window.end, run_id=context.run_id
    )
    metadata = table_metadata(split.valid, info, spec.schema, window)
    metadata["quarantined_rows"] = split.rejects.num_rows
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=checks.standard_results(store, spec, window),
    )
