"""The sensor that drives the collector: keep it alive, push its subscription, report commits, check health.

One cheap tick (no run is launched): everything is emitted as runless asset events, which the sensor
daemon records. The cursor holds the last reported Delta version, the collector process we started, the
checks currently in ERROR (so alerts fire on transitions) and the dead-channel count already reported.
"""

import os
import time
from dataclasses import asdict, dataclass, field

import dagster as dg
import orjson
from deltalake import DeltaTable

from pi_platform.defs.streaming import checks, gap_checks
from pi_platform.streaming.alerts import alert_payload, send_alert
from pi_platform.defs.streaming.assets import STREAM_VALUES
from pi_platform.defs.streaming.resources import StreamCollectorResource

# At one commit per second and a 15 s interval a tick sees ~15 commits; past this many they are reported
# as one aggregated materialisation so a long outage of the daemon cannot flood the event log.
MAX_MATERIALIZATIONS_PER_TICK = 60
SENSOR_DEFAULT_ENV = "PI_STREAM_SENSOR_DEFAULT"  # "running" to start the sensor with the daemon


@dataclass
class SensorCursor:
    delta_version: int | None = None
    pid: int | None = None
    started_at: float | None = None
    restarts: int = 0
    erroring: list[str] = field(default_factory=list)
    dead_channels: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "SensorCursor":
        if not text:
            return cls()
        try:
            return cls(**orjson.loads(text))
        except (orjson.JSONDecodeError, TypeError):
            return cls()

    def dump(self) -> str:
        return orjson.dumps(asdict(self)).decode()


def commit_materializations(table_uri: str, after: int | None) -> tuple[list[dg.AssetMaterialization], int | None]:
    """One materialisation per collector commit newer than `after` (only the latest one on a first tick)."""
    if not DeltaTable.is_deltatable(table_uri):
        return [], after
    table = DeltaTable(table_uri)
    latest = table.version()
    if after is not None and latest <= after:
        return [], after
    wanted = 1 if after is None else latest - after
    history = table.history(limit=min(wanted, 10 * MAX_MATERIALIZATIONS_PER_TICK))
    commits = sorted((h for h in history if "pi_platform.rows" in h and (after is None or h["version"] > after)),
                     key=lambda h: h["version"])
    if len(commits) > MAX_MATERIALIZATIONS_PER_TICK:
        return [_materialization(commits)], latest
    return [_materialization([c]) for c in commits], latest


def _materialization(commits: list[dict]) -> dg.AssetMaterialization:
    rows = sum(int(c["pi_platform.rows"]) for c in commits)
    newest = max((int(c["pi_platform.max_timestamp_us"]) for c in commits if "pi_platform.max_timestamp_us" in c),
                 default=None)
    committed_at = commits[-1]["timestamp"] / 1000
    metadata: dict = {
        "delta_version": commits[-1]["version"],
        "commits": len(commits),
        "rows": rows,
        "mode": ", ".join(sorted({c.get("pi_platform.mode", "?") for c in commits})),
        "wal_offset": int(commits[-1].get("pi_platform.wal_offset", 0)),
        "committed_at": dg.MetadataValue.timestamp(committed_at),
    }
    if newest is not None:
        metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(newest / 1e6)
        metadata["lag_s"] = dg.MetadataValue.float(round(committed_at - newest / 1e6, 3))
    if len(commits) > 1:
        metadata["first_delta_version"] = commits[0]["version"]
    return dg.AssetMaterialization(asset_key=STREAM_VALUES.key, metadata=metadata,
                                   description=f"{rows} rows in {len(commits)} collector commit(s)")


def keep_alive(context: dg.SensorEvaluationContext, collector: StreamCollectorResource, cursor: SensorCursor,
               status: dict | None) -> None:
    """Local mode: (re)start the collector when its heartbeat is missing; never within the startup grace."""
    if collector.mode != "local" or collector.is_alive(status):
        return
    if cursor.started_at is not None and time.time() - cursor.started_at < collector.startup_grace_s:
        return
    if cursor.pid is not None:
        collector.stop_collector(cursor.pid)  # ours, and hung or exited: it no longer beats
        if last := collector.last_log_line():
            context.log.warning(f"collector pid {cursor.pid} stopped beating; its last log line: {last}")
    cursor.pid = collector.start_collector()
    cursor.started_at = time.time()
    cursor.restarts += 1
    context.log.info(f"started collector pid {cursor.pid} (restart #{cursor.restarts})")


def _alert(context: dg.SensorEvaluationContext, collector: StreamCollectorResource, cursor: SensorCursor,
           outcomes: list[checks.Outcome]) -> None:
    erroring = {o.check_name for o in outcomes if o.is_error}
    url = collector.webhook_url()
    for outcome in outcomes:
        if outcome.is_error and outcome.check_name not in cursor.erroring:
            context.log.error(f"stream_values {outcome.check_name}: {outcome.description}")
            if url:
                details = {k: getattr(v, "value", v) for k, v in outcome.metadata.items()}
                send_alert(url, alert_payload(outcome.check_name, outcome.description, details))
    cursor.erroring = sorted(erroring)


@dg.sensor(
    name="stream_collector",
    minimum_interval_seconds=15,
    description="Keeps the streaming collector alive (local mode), pushes its subscription, reports each "
    "stream_values commit and evaluates the stream health checks (alerting on ERROR).",
    default_status=dg.DefaultSensorStatus.RUNNING
    if os.environ.get(SENSOR_DEFAULT_ENV, "").lower() == "running"
    else dg.DefaultSensorStatus.STOPPED,
)
def stream_collector_sensor(context: dg.SensorEvaluationContext, stream_collector: StreamCollectorResource) -> dg.SensorResult:
    cursor = SensorCursor.parse(context.cursor)
    keep_alive(context, stream_collector, cursor, stream_collector.status())
    desired = stream_collector.desired_web_ids()
    if desired is not None and stream_collector.push_subscription(desired):
        context.log.info(f"pushed subscription of {len(desired)} streams")
    events: list = []
    materializations, cursor.delta_version = commit_materializations(stream_collector.table_uri, cursor.delta_version)
    events.extend(materializations)
    starting = (stream_collector.mode == "local" and cursor.started_at is not None
                and time.time() - cursor.started_at < stream_collector.startup_grace_s)
    channel_outcome, cursor.dead_channels = checks.channels_healthy(stream_collector, cursor.dead_channels, starting)
    outcomes = [checks.tags_fresh(stream_collector), checks.stream_flowing(stream_collector, starting), channel_outcome,
                gap_checks.no_open_gaps(stream_collector), gap_checks.collector_problems(stream_collector)]
    events.extend(o.evaluation() for o in outcomes)
    _alert(context, stream_collector, cursor, outcomes)
    return dg.SensorResult(asset_events=events, cursor=cursor.dump())
