"""Data-level freshness: is the newest *event* in recorded_values and event_frames recent?

Dagster 1.13 does freshness with `FreshnessPolicy` on the asset, evaluated by the daemon without a sensor; every
daily asset has one (`conventions.DAILY_FRESHNESS`: was it materialised lately). A policy only sees when the
asset was materialised, so a table rematerialised every 15 minutes while PI sends nothing new would look fresh.
This check reads the `dagster/last_updated_timestamp` each materialisation reports (the newest value or frame
time) and fails when that is older than PI_RECORDED_MAX_LAG_MINUTES. It is a plain asset check rather than the
superseded freshness-check factories, evaluated without a run by `pi_freshness_checks_sensor` (like the stream
checks) or on demand from the UI.
"""

import time
from datetime import timedelta

import dagster as dg

from pi_platform import settings

FRESH_ASSETS = ["recorded_values", "event_frames"]
CHECK_NAME = "newest_event_fresh"
LAST_UPDATED = "dagster/last_updated_timestamp"
RECORDED_MAX_LAG = timedelta(minutes=settings.recorded_max_lag_minutes())


def evaluate(instance: dg.DagsterInstance, asset: str, now: float | None = None) -> dg.AssetCheckEvaluation:
    """The check's verdict from the asset's latest materialisation (WARN: late data is not wrong data)."""
    key = dg.AssetKey(asset)
    now = time.time() if now is None else now
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    if not records:
        return dg.AssetCheckEvaluation(asset_key=key, check_name=CHECK_NAME, passed=False,
                                       severity=dg.AssetCheckSeverity.WARN, description="never materialised")
    stamp = records[0].asset_materialization.metadata.get(LAST_UPDATED) if records[0].asset_materialization else None
    newest = float(stamp.value) if stamp is not None else records[0].timestamp
    lag = timedelta(seconds=max(0.0, now - newest))
    passed = lag <= RECORDED_MAX_LAG
    return dg.AssetCheckEvaluation(
        asset_key=key, check_name=CHECK_NAME, passed=passed, severity=dg.AssetCheckSeverity.WARN,
        description=f"newest event {lag.total_seconds() / 60:.0f} min old (limit {RECORDED_MAX_LAG.total_seconds() / 60:.0f})",
        metadata={LAST_UPDATED: dg.MetadataValue.timestamp(newest), "lag_minutes": round(lag.total_seconds() / 60, 1)},
    )


def _check(asset: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=CHECK_NAME,
                    description=f"Newest event time within PI_RECORDED_MAX_LAG_MINUTES ({RECORDED_MAX_LAG})")
    def newest_event_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        verdict = evaluate(context.instance, asset)
        return dg.AssetCheckResult(passed=verdict.passed, severity=verdict.severity,
                                   description=verdict.description, metadata=verdict.metadata)

    return newest_event_fresh


FRESHNESS_CHECKS = [_check(asset) for asset in FRESH_ASSETS]


@dg.sensor(name="pi_freshness_checks_sensor", minimum_interval_seconds=300,
           description="Evaluates newest_event_fresh on recorded_values and event_frames every 5 minutes, without a run.")
def freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    return dg.SensorResult(asset_events=[evaluate(context.instance, asset) for asset in FRESH_ASSETS])


defs = dg.Definitions(asset_checks=FRESHNESS_CHECKS, sensors=[freshness_sensor])
