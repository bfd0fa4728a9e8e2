"""The ingestion dashboard: every table's figures, quarantine counts by reason, and the stream's health.

Table figures come from the Delta log (`lake.table_summary`), quarantine counts from a two-column scan, and the
stream's health from each collector's own files (status.json, tags.json; one state directory per shard, as
`streaming.shards.state_dirs` lists them) judged by the same pure functions the Dagster checks use
(`streaming.health`, `streaming.staleness`), so the viewer and the checks cannot disagree.
"""

from pathlib import Path
from typing import Any

from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import QUARANTINE, TABLES
from pi_platform.streaming import health, staleness
from pi_platform.streaming.shards import state_dirs
from pi_platform.streaming.state import TAGS_FILE, read_json, read_status
from pi_platform.viewer.lake import scan, table_summary

# The stream_collector resource's defaults: the whole stream is silent after this long without rows.
SILENT_AFTER_S = 120.0
MAX_REASONS = 50  # per table: the most frequent first
MAX_LISTED = 100  # stale tags and open gaps listed by name (the counts are complete)


def tables(store: DeltaStore) -> dict[str, Any]:
    """Per table its figures and quarantined rows by reason."""
    quarantine = quarantine_reasons(store)
    return {"tables": [{**table_summary(store, spec), "quarantine": quarantine.get(spec.name, [])}
                       for spec in TABLES.values()]}


def quarantine_reasons(store: DeltaStore) -> dict[str, list[dict[str, Any]]]:
    """table -> [{reason, rows}] most frequent first."""
    rows = scan(store, QUARANTINE.name, filter=None, columns=["table_name", "reason"])
    if rows.num_rows == 0:
        return {}
    counts = rows.group_by(["table_name", "reason"]).aggregate([([], "count_all")])
    counts = counts.sort_by([("table_name", "ascending"), ("count_all", "descending"), ("reason", "ascending")])
    found: dict[str, list[dict[str, Any]]] = {}
    for row in counts.to_pylist():
        listed = found.setdefault(row["table_name"], [])
        if len(listed) < MAX_REASONS:
            listed.append({"reason": row["reason"], "rows": row["count_all"]})
    return found


def stream(store: DeltaStore, state_dir: Path, shards: int = 1) -> dict[str, Any]:
    """Every collector of the `shards`-shard layout under `state_dir` (`streaming.shards.state_dirs`, as `up` and
    `stream --status` find them): each one's state, throughput, channels, open gaps and stale tags (PI's own
    terms), and whether the whole stream flows (silent when any shard is, named)."""
    newest = health.newest_received_at(store, SILENT_AFTER_S)
    found = [(label, *_collector(directory, newest)) for label, directory in state_dirs(state_dir, shards).items()]
    stream_wide = health.worst_silence([(label, silence) for label, silence, _ in found])
    return {
        "state_dir": str(state_dir),
        "shard_count": shards,
        "flowing": not stream_wide.silent,
        "reason": stream_wide.reason,
        "shards": [{"shard": label, **collector} for label, _, collector in found],
    }


def _collector(state_dir: Path, newest: float | None) -> tuple[health.StreamSilence, dict[str, Any]]:
    """One collector's silence (for the stream-wide verdict) and health, from the files in its state directory."""
    status = read_status(state_dir)
    silence = health.stream_silence(status, newest, SILENT_AFTER_S)
    if status is None:
        return silence, {"state": "not started", "state_dir": str(state_dir), "flowing": False, "reason": silence.reason}
    report = staleness.judge(read_json(state_dir / TAGS_FILE), staleness.StalenessPolicy())
    channels = health.channel_health(status, previous_dead=int(status.get("dead_channels") or 0))
    gaps = status.get("gaps") or []
    return silence, {
        "state": status.get("state"),
        "state_dir": str(state_dir),
        "pid": status.get("pid"),
        "heartbeat_age_s": silence.heartbeat_age_s,
        "flowing": not silence.silent,
        "reason": silence.reason,
        "values_per_s": (status.get("throughput") or {}).get("values_per_s"),
        "rows_committed": status.get("total_rows_committed"),
        "streams": (status.get("subscription") or {}).get("streams"),
        "channels": [{k: c.get(k) for k in ("name", "state", "web_ids", "messages", "reconnects", "last_message_at", "last_error")}
                     for c in status.get("connections") or []][:MAX_LISTED],
        "channel_problems": channels.problems,
        "open_gaps": len(gaps),
        "gaps": gaps[:MAX_LISTED],
        "stale_tags": len(report.verdicts),
        "stale": [v.as_dict() for v in report.verdicts[:MAX_LISTED]],
        "stale_poll_problem": report.poll_problem,
        "problems": status.get("problems") or [],
    }
