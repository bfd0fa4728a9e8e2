"""Correctness of a benchmark run: the extracted Delta rows of some tags against the plant's ground truth.

The simulator is deterministic, so the same Plant built in this process (same seed, size and frozen clock)
computes exactly what PI holds; a fast run that lost or doubled values would be worthless.
"""

from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from pi_platform import plantday
from pi_platform.bench.simproc import SimulatorSpec
from pi_platform.simulator.plant import Plant
from pi_platform.value_columns import VALUE_SCHEMA, sort_values


def ground_truth(spec: SimulatorSpec, web_ids: list[str], day: date) -> pa.Table:
    """What the day's partition must hold for these tags, in VALUE_SCHEMA, sorted: PI's recorded values of
    [midnight, next midnight) of the plant's day (PI_PARTITION_TIMEZONE). PI's range includes both ends, but a value stamped exactly at the next midnight
    belongs to the next day's partition (the extraction stores it there), so it is not expected here."""
    plant = Plant(spec.seed, spec.n_tags, spec.values_per_minute, edge_tags=spec.edge_tags, now=spec.now,
                  event_frames=False)
    zone = plantday.zone()  # the partition's day: [local midnight, next local midnight)
    start, end = plantday.local_midnight(day, zone), plantday.local_midnight(day + timedelta(days=1), zone)
    tables = [plant.recorded(web_id, start, end) for web_id in web_ids]
    if not tables:
        return VALUE_SCHEMA.empty_table()
    values = pa.concat_tables(tables)
    return sort_values(values.filter(pc.less(values["timestamp"], pa.scalar(end, values["timestamp"].type))))


def extracted(table_uri: str, web_ids: list[str]) -> pa.Table:
    """The Delta rows of these tags, reduced to VALUE_SCHEMA (the partition column dropped), sorted.

    The scan reads every file for a few tags, so little is read ahead: with pyarrow's defaults (16 batches, 4
    files) the benchmark process peaked at 2.5 GB verifying a 30,000-tag day (3,000 tags: 736 -> 513 MB)."""
    dataset = DeltaTable(table_uri).to_pyarrow_dataset()
    rows = dataset.to_table(columns=VALUE_SCHEMA.names, filter=pc.field("web_id").isin(web_ids), batch_readahead=2,
                            fragment_readahead=1)
    return sort_values(rows.cast(VALUE_SCHEMA))


def differences(expected: pa.Table, got: pa.Table) -> str | None:
    """None when equal, else a one-line description of the first difference (for reports and test failures)."""
    if expected.num_rows != got.num_rows:
        return f"{got.num_rows} rows extracted, ground truth has {expected.num_rows}"
    for name in VALUE_SCHEMA.names:
        if not expected[name].equals(got[name]):
            mismatch = pc.invert(pc.fill_null(pc.equal(expected[name], got[name]), False))
            if expected[name].null_count or got[name].null_count:
                both_null = pc.and_(pc.is_null(expected[name]), pc.is_null(got[name]))
                mismatch = pc.and_(mismatch, pc.invert(both_null))
            index = pc.index(mismatch, True).as_py()
            if index < 0:
                continue
            return (f"column {name} differs at row {index}: extracted {got[name][index].as_py()!r}, "
                    f"ground truth {expected[name][index].as_py()!r}")
    return None
