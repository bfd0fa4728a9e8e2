"""`late_edits_applied` on recorded_values: the healing runs' state, from the Dagster instance itself.

Each healing run carries the run tags the sensor set (`HEALING_TAG`, and how many tags it re-reads), so the
runs are the durable record of what was requested: a day whose latest healing run is queued or running is
pending, one whose latest healing run failed holds edits not applied (the check fails, WARN: the table is
stale, not wrong), and every successful run applied its tag-days. The sensor evaluates it on every tick
(no run needed); the UI can also execute it on demand.
"""

import time

import dagster as dg

CHECK_NAME = "late_edits_applied"
HEALING_TAG, HEALING = "pi_platform/healing", "late_edits"
CHANGED_TAGS = "pi_platform/healing_tags"  # number of tags the run re-reads
RECORDED = dg.AssetKey("recorded_values")
MAX_RUNS = 1000  # latest healing runs considered
_PENDING = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED}
_FAILED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING}


def evaluate(instance: dg.DagsterInstance, now: float | None = None) -> dg.AssetCheckEvaluation:
    records = instance.get_run_records(dg.RunsFilter(tags={HEALING_TAG: HEALING}), limit=MAX_RUNS)
    latest: dict[str, dg.RunRecord] = {}
    applied = 0
    for record in records:  # newest first
        run = record.dagster_run
        latest.setdefault(run.tags.get("dagster/partition", "?"), record)
        if run.status == dg.DagsterRunStatus.SUCCESS:
            applied += int(run.tags.get(CHANGED_TAGS, "0"))
    pending = {day: r for day, r in latest.items() if r.dagster_run.status in _PENDING}
    failed = sorted(day for day, r in latest.items() if r.dagster_run.status in _FAILED)
    oldest = min((r.create_timestamp.timestamp() for r in pending.values()), default=None)
    now = time.time() if now is None else now
    metadata: dict = {
        "pending_days": dg.MetadataValue.json(sorted(pending)),
        "pending_runs": len(pending),
        "applied_tag_days": applied,
        "failed_days": dg.MetadataValue.json(failed),
        "healing_runs": len(records),
    }
    if oldest is not None:
        metadata["oldest_pending"] = dg.MetadataValue.timestamp(oldest)
        metadata["oldest_pending_minutes"] = round((now - oldest) / 60, 1)
    description = (f"{applied} tag-day(s) re-read after edits; {len(pending)} day(s) pending"
                   + (f"; edits NOT applied on {', '.join(failed)} (their healing run failed: rerun it)" if failed else ""))
    return dg.AssetCheckEvaluation(asset_key=RECORDED, check_name=CHECK_NAME, passed=not failed,
                                   severity=dg.AssetCheckSeverity.WARN, description=description, metadata=metadata)


@dg.asset_check(asset=RECORDED, name=CHECK_NAME,
                description="PI history edits seen by late_edits_sensor: pending, applied, and days whose re-read failed")
def late_edits_applied(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    verdict = evaluate(context.instance)
    return dg.AssetCheckResult(passed=verdict.passed, severity=verdict.severity, description=verdict.description,
                               metadata=verdict.metadata)
