"""Stream health as asset checks, evaluated without a run by the sensor and on demand from the UI.

- `tags_fresh`: tags PI itself shows stale (snapshot older than excmax, interface system state, deleted) are
  ERROR; a channel silent while the snapshot moves past compmax is WARN; lists name, element path, age, reason.
- `stream_flowing`: the collector is alive and rows keep arriving; a silent stream is ERROR.
- `channels_healthy`: no connection down for long (ERROR); the dead-channel watchdog firing is WARN.

Each check is a pure function of the resource's files and table, returning an `Outcome`; the sensor wraps
it in an AssetCheckEvaluation (runless), the @asset_check in an AssetCheckResult. With sharded collectors each
check judges every shard and reports the worst, naming the shard (`shard K/N: ...`).
"""

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pi_platform.defs.streaming.assets import STREAM_VALUES
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.streaming import health, staleness
from pi_platform.streaming.state import TAGS_FILE, read_json

TAGS_FRESH = "tags_fresh"
STREAM_FLOWING = "stream_flowing"
CHANNELS_HEALTHY = "channels_healthy"


@dataclass(frozen=True)
class Outcome:
    check_name: str
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def evaluation(self) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(asset_key=STREAM_VALUES.key, check_name=self.check_name, passed=self.passed,
                                       severity=self.severity, description=self.description, metadata=self.metadata)

    def result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(asset_key=STREAM_VALUES.key, check_name=self.check_name, passed=self.passed,
                                   severity=self.severity, description=self.description, metadata=self.metadata)

    @property
    def is_error(self) -> bool:
        return not self.passed and self.severity == dg.AssetCheckSeverity.ERROR


def _severity(name: str | None) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.WARN if name == "WARN" else dg.AssetCheckSeverity.ERROR


def tags_fresh(collector: StreamCollectorResource) -> Outcome:
    """Stale tags as PI itself says (staleness.py), from each collector's published snapshot poll."""
    pattern = collector.stale_tags.upper()
    reports = []
    for label, directory, _ in collector.shard_states():
        published = read_json(Path(directory) / TAGS_FILE) or {}
        judged = {w: t for w, t in (published.get("tags") or {}).items()  # (a pre-upgrade file holds lists: skipped)
                  if isinstance(t, dict) and fnmatchcase(str(t.get("name")).upper(), pattern)}
        reports.append((label, staleness.judge({**published, "tags": judged}, collector.staleness_policy())))
    report = staleness.combine(reports)
    errors, warns = report.at("ERROR"), report.at("WARN")
    shown_verdicts = errors[:500] + warns[:500]
    paths = _element_paths(collector, [v.web_id for v in shown_verdicts])
    listed = {v.web_id: {**v.as_dict(), "element_path": paths.get(v.web_id) or v.path} for v in shown_verdicts}
    if report.severity is None:
        description = f"all {report.tags} tags current by PI's own terms (snapshot within excmax, no interface state)"
    else:
        shown = [f"{v.name} ({v.reason})" for v in errors + warns]
        parts = [report.poll_problem] if report.poll_problem else []
        parts.append(f"{len(errors)} tags ERROR, {len(warns)} WARN of {report.tags}")
        listing = f": {', '.join(shown[:20])}{' ...' if len(shown) > 20 else ''}" if shown else ""
        description = "; ".join(parts) + listing
    by_source: dict[str, int] = {}
    for verdict in errors:
        by_source[verdict.pointsource or "?"] = by_source.get(verdict.pointsource or "?", 0) + 1
    return Outcome(
        TAGS_FRESH,
        passed=report.severity is None,
        severity=_severity(report.severity),
        description=description,
        metadata={
            "tags": report.tags,
            "stale_tags_error": dg.MetadataValue.json({v.name: listed[v.web_id] for v in errors[:500]}),
            "stale_tags_warn": dg.MetadataValue.json({v.name: listed[v.web_id] for v in warns[:500]}),
            "stale_by_pointsource": dg.MetadataValue.json(by_source),
            "judged_at": dg.MetadataValue.float(float(report.judged_at or 0.0)),
            "poll_problem": report.poll_problem or "",
        },
    )


def _element_paths(collector: StreamCollectorResource, web_ids: list[str]) -> dict[str, str]:
    """Point WebID -> AF element path from the latest `af_attributes` snapshot (only the tags asked for)."""
    store = collector.store
    if not web_ids or not store.exists("af_attributes"):
        return {}
    rows = store.read("af_attributes", filter=ds.field("point_web_id").isin(web_ids),
                      columns=["snapshot_date", "point_web_id", "element_path"])
    if rows.num_rows == 0:
        return {}
    rows = rows.filter(pc.equal(rows["snapshot_date"], pc.max(rows["snapshot_date"]))).sort_by("element_path")
    return {w: p for w, p in zip(rows["point_web_id"].to_pylist(), rows["element_path"].to_pylist(), strict=True)
            if w is not None}


def stream_flowing(collector: StreamCollectorResource, starting: bool = False) -> Outcome:
    """`starting`: a collector was just started, so silence is expected for a moment (WARN, not ERROR)."""
    newest = health.newest_received_at(collector.store, collector.silent_after_s)
    silence = health.worst_silence([(label, health.stream_silence(status, newest, collector.silent_after_s))
                                    for label, _, status in collector.shard_states()])
    return Outcome(
        STREAM_FLOWING,
        passed=not silence.silent,
        severity=dg.AssetCheckSeverity.WARN if starting else dg.AssetCheckSeverity.ERROR,
        description=silence.reason,
        metadata={
            "heartbeat_age_s": dg.MetadataValue.float(float(silence.heartbeat_age_s or -1.0)),
            "newest_row_age_s": dg.MetadataValue.float(float(silence.last_rows_age_s or -1.0)),
        },
    )


def channels_healthy(collector: StreamCollectorResource, previous_dead: int,
                     starting: bool = False) -> tuple[Outcome, int]:
    state = health.channel_health_all([(label, status) for label, _, status in collector.shard_states()],
                                      previous_dead)
    outcome = Outcome(
        CHANNELS_HEALTHY,
        passed=state.healthy,
        severity=dg.AssetCheckSeverity.WARN if starting else _severity(state.severity),
        description="all channels open" if state.healthy else "; ".join(state.problems),
        metadata={"dead_channels_total": state.dead_channels, "problems": dg.MetadataValue.json(state.problems)},
    )
    return outcome, state.dead_channels


@dg.asset_check(asset=STREAM_VALUES.key, name=TAGS_FRESH,
                description="No tag stale by PI's own terms: snapshot within excmax, no interface state, channel following")
def tags_fresh_check(stream_collector: StreamCollectorResource) -> dg.AssetCheckResult:
    return tags_fresh(stream_collector).result()


@dg.asset_check(asset=STREAM_VALUES.key, name=STREAM_FLOWING, description="Collector alive and rows arriving")
def stream_flowing_check(stream_collector: StreamCollectorResource) -> dg.AssetCheckResult:
    return stream_flowing(stream_collector).result()


@dg.asset_check(asset=STREAM_VALUES.key, name=CHANNELS_HEALTHY, description="Channels open; dead-channel watchdog quiet")
def channels_healthy_check(stream_collector: StreamCollectorResource) -> dg.AssetCheckResult:
    outcome, _ = channels_healthy(stream_collector, previous_dead=0)
    return outcome.result()


CHECKS = [tags_fresh_check, stream_flowing_check, channels_healthy_check]
