"""Stream health as asset checks, evaluated without a run by the sensor and on demand from the UI.

- `tags_fresh`: per tag, last value older than k x its usual interval -> WARN, then ERROR; lists the tags.
- `stream_flowing`: the collector is alive and rows keep arriving; a silent stream is ERROR.
- `channels_healthy`: no connection down for long (ERROR); the dead-channel watchdog firing is WARN.

Each check is a pure function of the resource's files and table, returning an `Outcome`; the sensor wraps
it in an AssetCheckEvaluation (runless), the @asset_check in an AssetCheckResult.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from pi_platform.defs.streaming.assets import STREAM_VALUES
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.streaming import health
from pi_platform.streaming.state import CURSORS_FILE, TAGS_FILE, read_json, read_subscription

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
    subscription = read_subscription(collector.state_dir)
    expected = None
    if subscription:
        since = read_json(Path(collector.state_dir) / CURSORS_FILE) or {}
        expected = {w: float(since.get(w, time.time() * 1e6)) / 1e6 for w in subscription["web_ids"]}
    published = read_json(Path(collector.state_dir) / TAGS_FILE)
    report = health.tag_staleness(published, collector.policy(), expected=expected)
    severity = report.severity
    stale = sorted(report.error) + sorted(report.warn) + report.missing
    if severity is None:
        description = f"all {report.tags} tags updated within {collector.stale_warn_factor:g}x their usual interval"
    else:
        description = (f"{len(report.error)} tags ERROR-stale, {len(report.warn)} WARN-stale, {len(report.missing)} "
                       f"subscribed without data: {', '.join(stale[:20])}{' ...' if len(stale) > 20 else ''}")
    return Outcome(
        TAGS_FRESH,
        passed=severity is None,
        severity=_severity(severity),
        description=description,
        metadata={
            "tags": report.tags,
            "stale_tags_error": dg.MetadataValue.json(report.error),
            "stale_tags_warn": dg.MetadataValue.json(report.warn),
            "subscribed_without_data": dg.MetadataValue.json(report.missing[:500]),
            "max_lag_s": dg.MetadataValue.float(float(report.max_lag_s or 0.0)),
        },
    )


def stream_flowing(collector: StreamCollectorResource, starting: bool = False) -> Outcome:
    """`starting`: a collector was just started, so silence is expected for a moment (WARN, not ERROR)."""
    policy = collector.policy()
    silence = health.stream_silence(collector.status(), health.newest_received_at(collector.table_uri, policy), policy)
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
    state = health.channel_health(collector.status(), previous_dead)
    outcome = Outcome(
        CHANNELS_HEALTHY,
        passed=state.healthy,
        severity=dg.AssetCheckSeverity.WARN if starting else _severity(state.severity),
        description="all channels open" if state.healthy else "; ".join(state.problems),
        metadata={"dead_channels_total": state.dead_channels, "problems": dg.MetadataValue.json(state.problems)},
    )
    return outcome, state.dead_channels


@dg.asset_check(asset=STREAM_VALUES.key, name=TAGS_FRESH, description="Each tag updated within k x its usual interval")
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
