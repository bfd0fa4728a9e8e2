"""Asset checks shared by every table, evaluated on what was committed to Delta (read back), not on what
the run intended to write.

Blocking: the stored schema is the declared one; keys are non-null and unique. A failure stops downstream
assets of the run. Non-blocking: quarantined rows (ERROR: data was refused), row-count drop against the
previous day (WARN).
"""

from datetime import timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pi_platform.batch.window import DayWindow
from pi_platform.storage import DeltaStore, read_quarantine
from pi_platform.storage.tables import TableSpec

SCHEMA = "schema_matches"
KEYS = "keys_not_null_unique"
QUARANTINE = "no_quarantined_rows"
ROW_COUNT = "row_count_vs_previous_day"
ROW_DROP_WARN = 0.5  # warn when a day has less than half the rows of the day before
_RAW_PREVIEW = 160


def standard_specs(asset: str, *, row_count: bool = True) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(SCHEMA, asset=asset, blocking=True, description="stored Delta schema equals the declared one"),
        dg.AssetCheckSpec(KEYS, asset=asset, blocking=True, description="key columns non-null and unique"),
        dg.AssetCheckSpec(QUARANTINE, asset=asset, description="no row of the window was refused into quarantine"),
    ]
    if row_count:
        specs.append(dg.AssetCheckSpec(ROW_COUNT, asset=asset, description="rows did not drop by half vs the previous day"))
    return specs


def standard_results(
    store: DeltaStore, spec: TableSpec, window: DayWindow, *, row_count: bool = True, keys_in_window: bool = True
) -> list[dg.AssetCheckResult]:
    """The results of `standard_specs`, read back from Delta. Upserted tables check keys over the whole table
    (`keys_in_window=False`): a frame first seen on another day must not reappear under the same key."""
    results = [
        schema_check(store, spec),
        key_check(store, spec, window if keys_in_window else None),
        quarantine_check(store, spec, window),
    ]
    if row_count:
        results.append(row_count_check(store, spec, window))
    return results


def schema_check(store: DeltaStore, spec: TableSpec) -> dg.AssetCheckResult:
    stored = store.table(spec.name).to_pyarrow_dataset().schema
    want = {f.name: f.type for f in spec.schema}
    have = {f.name: f.type for f in stored}
    problems = [f"missing {n}" for n in want if n not in have]
    problems += [f"unexpected {n}" for n in have if n not in want]
    problems += [f"{n}: {have[n]} != {t}" for n, t in want.items() if n in have and have[n] != t]
    return dg.AssetCheckResult(
        check_name=SCHEMA, passed=not problems, metadata={"problems": dg.MetadataValue.json(problems)}
    )


def window_filter(spec: TableSpec, window: DayWindow) -> ds.Expression:
    column = ds.field(spec.partition_column)
    return (column >= pa.scalar(window.first)) & (column < pa.scalar(window.end))


def key_check(store: DeltaStore, spec: TableSpec, window: DayWindow | None = None) -> dg.AssetCheckResult:
    """Keys of the window (or of the whole table when `window` is None, for upserted tables)."""
    keys = list(spec.keys)
    rows = store.read(spec.name, columns=keys, filter=window_filter(spec, window) if window else None)
    nulls = {k: rows[k].null_count for k in keys if rows[k].null_count}
    groups = rows.group_by(keys).aggregate([([], "count_all")])
    duplicates = groups.filter(pc.greater(groups["count_all"], 1))
    sample = duplicates.slice(0, 5).to_pylist()
    return dg.AssetCheckResult(
        check_name=KEYS,
        passed=not nulls and duplicates.num_rows == 0,
        metadata={
            "keys": ", ".join(keys),
            "rows": rows.num_rows,
            "null_keys": dg.MetadataValue.json(nulls),
            "duplicate_keys": duplicates.num_rows,
            "duplicate_sample": dg.MetadataValue.json([{k: str(v) for k, v in r.items()} for r in sample]),
        },
    )


def quarantine_check(store: DeltaStore, spec: TableSpec, window: DayWindow) -> dg.AssetCheckResult:
    rows = read_quarantine(store, table_name=spec.name, start=window.first, end=window.end)
    reasons = rows.group_by("reason").aggregate([("reason", "count")]).sort_by([("reason_count", "descending")])
    return dg.AssetCheckResult(
        check_name=QUARANTINE,
        passed=rows.num_rows == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "quarantined_rows": rows.num_rows,
            "reasons": dg.MetadataValue.json({r["reason"]: r["reason_count"] for r in reasons.slice(0, 20).to_pylist()}),
            "sample": dg.MetadataValue.md(_sample(rows)),
        },
        description=None if rows.num_rows == 0 else f"{rows.num_rows} rows refused; see table 'quarantine'",
    )


def row_count_check(store: DeltaStore, spec: TableSpec, window: DayWindow) -> dg.AssetCheckResult:
    """Compare the window's last day with the day before it (WARN on a drop below ROW_DROP_WARN)."""
    last = window.end - timedelta(days=1)
    column = ds.field(spec.partition_column)
    dataset = store.table(spec.name).to_pyarrow_dataset()
    today = dataset.count_rows(filter=column == pa.scalar(last))
    before = dataset.count_rows(filter=column == pa.scalar(last - timedelta(days=1)))
    ratio = today / before if before else None
    return dg.AssetCheckResult(
        check_name=ROW_COUNT,
        passed=ratio is None or ratio >= ROW_DROP_WARN,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows": today, "previous_day_rows": before, "ratio": ratio if ratio is not None else "no baseline"},
    )


def _sample(rows: pa.Table) -> str:
    if rows.num_rows == 0:
        return "_none_"
    sample = rows.select(["event_date", "web_id", "reason", "raw"]).slice(0, 5).to_pandas()
    sample["raw"] = sample["raw"].str.slice(0, _RAW_PREVIEW)
    return sample.to_markdown(index=False)
