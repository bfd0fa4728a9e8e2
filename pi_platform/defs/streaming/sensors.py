"""The sensor that drives the collector: keep it alive, push its subscription, report commits, check health.

One cheap tick (no run is launched): everything is emitted as runless asset events, which the sensor
daemon records. The instance stays quiet: the collector commits about once a second, but Dagster gets one
materialisation per `report_interval_s` (default a minute) carrying the rows, commits and Delta versions it
covers, and a check evaluation only when its outcome changes or at that same cadence (alerts still fire on
the tick that turns a check ERROR). The cursor holds the last reported Delta version, when we last reported,
the collector process we started, each check's last reported outcome and the dead-channel count reported.

Sharded (`PI_STREAM_SHARDS` > 1), every shard is supervised the same way (started, restarted, given the
subscription) and tracked in the cursor's `shards`; the checks aggregate the shards (worst of, union), naming
the shard, and the materialisation counts commits and rows per shard.
"""

import time
from dataclasses import asdict, dataclass, field

import dagster as dg
import orjson

from pi_platform import settings
from pi_platform.defs.metadata import viewer_link
from pi_platform.defs.streaming import checks, gap_checks
from pi_platform.defs.streaming.assets import STREAM_VALUES
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.storage import DeltaStore, tables
from pi_platform.streaming.alerts import alert_payload, send_alert
from pi_platform.streaming.shards import Shard
from pi_platform.streaming.state import process_alive

# Commits read from the Delta log for one report; after a long daemon outage older ones are summed from the
# table's version numbers only (their rows are in the table all the same).
MAX_COMMITS_PER_REPORT = 5000


@dataclass
class Supervised:
    """A collector process the sensor started."""

    pid: int | None = None
    started_at: float | None = None
    restarts: int = 0


@dataclass
class SensorCursor:
    delta_version: int | None = None
    pid: int | None = None  # pid, started_at, restarts: the unsharded collector's (shards are in `shards`)
    started_at: float | None = None
    restarts: int = 0
    erroring: list[str] = field(default_factory=list)
    dead_channels: int = 0
    reported_at: float | None = None
    check_states: dict[str, str] = field(default_factory=dict)
    shards: dict[str, dict] = field(default_factory=dict)  # shard label -> Supervised fields

    def supervised(self, shard: Shard) -> Supervised:
        if not shard.sharded:
            return Supervised(self.pid, self.started_at, self.restarts)
        return Supervised(**self.shards.get(shard.label, {}))

    def keep(self, shard: Shard, record: Supervised) -> None:
        if shard.sharded:
            self.shards[shard.label] = asdict(record)
        else:
            self.pid, self.started_at, self.restarts = record.pid, record.started_at, record.restarts

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


def commit_report(store: DeltaStore, after: int | None) -> tuple[dg.AssetMaterialization | None, int | None]:
    """One materialisation covering every collector commit newer than `after` (only the latest on a first tick)."""
    if not store.exists(tables.STREAM_VALUES.name):
        return None, after
    table = store.table(tables.STREAM_VALUES.name)
    latest = table.version()
    if after is not None and latest <= after:
        return None, after
    wanted = 1 if after is None else latest - after
    history = table.history(limit=min(wanted, MAX_COMMITS_PER_REPORT))
    commits = sorted((h for h in history if "pi_platform.rows" in h and (after is None or h["version"] > after)),
                     key=lambda h: h["version"])
    return (_materialization(commits) if commits else None), latest


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
        "viewer": dg.MetadataValue.url(viewer_link(tables.STREAM_VALUES.name)),
    }
    if newest is not None:
        metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(newest / 1e6)
        metadata["lag_s"] = dg.MetadataValue.float(round(committed_at - newest / 1e6, 3))
    if len(commits) > 1:
        metadata["first_delta_version"] = commits[0]["version"]
    writers: dict[str, dict[str, int]] = {}
    for commit in commits:
        writer = writers.setdefault(commit.get("pi_platform.app_id", "?"), {"commits": 0, "rows": 0})
        writer["commits"] += 1
        writer["rows"] += int(commit["pi_platform.rows"])
    if len(writers) > 1:  # sharded collectors: what each shard committed
        metadata["by_writer"] = dg.MetadataValue.json(writers)
    return dg.AssetMaterialization(asset_key=STREAM_VALUES.key, metadata=metadata,
                                   description=f"{rows} rows in {len(commits)} collector commit(s)")


def starting(collector: StreamCollectorResource, cursor: "Supervised | SensorCursor", status: dict | None) -> bool:
    """Our collector is still coming up: within the startup grace, or alive but without a commit of its own yet
    (importing, opening the lake, resolving tags on a loaded machine), up to `startup_timeout_s`. Restarting it
    then would only kill it again before it could ever beat."""
    if collector.mode != "local" or cursor.started_at is None or cursor.pid is None:
        return False
    age = time.time() - cursor.started_at
    if age < collector.startup_grace_s:
        return True
    committed = status is not None and status.get("pid") == cursor.pid and (status.get("commits") or 0) > 0
    return age < collector.startup_timeout_s and not committed and process_alive(cursor.pid)


def keep_alive(context: dg.SensorEvaluationContext, collector: StreamCollectorResource, cursor: SensorCursor,
               shard: Shard, status: dict | None) -> None:
    """Local mode: (re)start a collector (shard) when its heartbeat is missing, unless it is still starting."""
    record = cursor.supervised(shard)
    if collector.mode != "local" or collector.is_alive(status) or starting(collector, record, status):
        return
    which = f"collector shard {shard.label}" if shard.sharded else "collector"
    if record.pid is not None:
        collector.stop_collector(record.pid)  # ours, and hung or exited: it no longer beats
        if last := collector.last_log_line(shard):
            context.log.warning(f"{which} pid {record.pid} stopped beating; its last log line: {last}")
    record.pid = collector.start_collector(shard)
    record.started_at = time.time()
    record.restarts += 1
    cursor.keep(shard, record)
    context.log.info(f"started {which} pid {record.pid} (restart #{record.restarts})")


def retire_other_layouts(context: dg.SensorEvaluationContext, collector: StreamCollectorResource,
                         cursor: SensorCursor) -> bool:
    """The shard count changed: collectors we started for the old count get SIGTERM (they drain their WAL and
    commit, which the new shards require before they take over) and are forgotten once gone. True while one
    still runs, so the new shards are not started into a refusal."""
    if collector.mode != "local":
        return False
    current = {s.label for s in collector.shard_list()} if collector.shards > 1 else set()
    old = {label: Supervised(**record) for label, record in cursor.shards.items() if label not in current}
    if collector.shards > 1 and cursor.pid is not None:
        old["1/1"] = Supervised(cursor.pid, cursor.started_at, cursor.restarts)
    running = False
    for label, record in old.items():
        if record.pid is not None and process_alive(record.pid):
            collector.stop_collector(record.pid, graceful=True)
            context.log.info(f"shard count is now {collector.shards}: stopping collector {label} pid {record.pid} "
                             "(SIGTERM: it commits what it holds first)")
            running = True
        elif label == "1/1" and collector.shards > 1:
            cursor.pid = cursor.started_at = None
        else:
            cursor.shards.pop(label, None)
    return running


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


def _changed_or_due(cursor: SensorCursor, outcomes: list[checks.Outcome], due: bool) -> list[dg.AssetCheckEvaluation]:
    """Evaluations worth an event: every check at the report cadence, otherwise only those whose outcome moved."""
    emitted = []
    for outcome in outcomes:
        state = f"{outcome.passed}:{outcome.severity}"
        if due or cursor.check_states.get(outcome.check_name) != state:
            emitted.append(outcome.evaluation())
            cursor.check_states[outcome.check_name] = state
    return emitted


@dg.sensor(
    name="stream_collector",
    minimum_interval_seconds=15,
    description="Keeps the streaming collector alive (local mode), pushes its subscription, reports its "
    "stream_values commits once per report interval and evaluates the stream health checks (alerting on ERROR).",
    default_status=dg.DefaultSensorStatus.RUNNING if settings.stream_sensor_running() else dg.DefaultSensorStatus.STOPPED,
)
def stream_collector_sensor(context: dg.SensorEvaluationContext, stream_collector: StreamCollectorResource) -> dg.SensorResult:
    cursor = SensorCursor.parse(context.cursor)
    statuses = {shard: stream_collector.status(shard) for shard in stream_collector.shard_list()}
    if not retire_other_layouts(context, stream_collector, cursor):
        for shard, status in statuses.items():
            keep_alive(context, stream_collector, cursor, shard, status)
    desired = stream_collector.desired_web_ids()
    if desired is not None and stream_collector.push_subscription(desired):
        context.log.info(f"pushed subscription of {len(desired)} streams")
    events: list = []
    now = time.time()
    report_due = cursor.reported_at is None or now - cursor.reported_at >= stream_collector.report_interval_s
    if report_due:
        materialization, cursor.delta_version = commit_report(stream_collector.store, cursor.delta_version)
        events.extend([materialization] if materialization is not None else [])
        cursor.reported_at = now
    coming_up = any(starting(stream_collector, cursor.supervised(shard), status) for shard, status in statuses.items())
    channel_outcome, cursor.dead_channels = checks.channels_healthy(stream_collector, cursor.dead_channels, coming_up)
    outcomes = [checks.tags_fresh(stream_collector), checks.stream_flowing(stream_collector, coming_up), channel_outcome,
                gap_checks.no_open_gaps(stream_collector), gap_checks.collector_problems(stream_collector)]
    events.extend(_changed_or_due(cursor, outcomes, report_due))
    _alert(context, stream_collector, cursor, outcomes)
    return dg.SensorResult(asset_events=events, cursor=cursor.dump())
