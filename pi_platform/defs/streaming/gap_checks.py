"""Checks on what the collector knows it is missing or cannot do, read from its state directory.

- `no_open_gaps`: intervals the table may be missing (gap ledger, gaps.json) are WARN once one has failed
  a read or stayed open a minute, ERROR once one has stayed open past `gap_error_after_s`; each is listed with its age, streams, failed
  reads and last error.
- `collector_problems`: the collector's `problems` (refused credentials, bad tags named by name and WebID,
  a WAL that cannot write, damaged WAL records, failing commits) at their own severity.

Separate from checks.py because they judge the collector's own bookkeeping, not the data's freshness.
Sharded collectors: every shard's gaps and problems, each named by its shard.
"""

import time

import dagster as dg

from pi_platform.defs.streaming.assets import STREAM_VALUES
from pi_platform.defs.streaming.checks import Outcome
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.streaming.gaps import read_gaps

NO_OPEN_GAPS = "no_open_gaps"
COLLECTOR_PROBLEMS = "collector_problems"
GAP_ERROR_AFTER_S = 300.0  # a gap PI has not answered for this long is an operator's problem
WARN_AFTER_S = 60.0


def no_open_gaps(collector: StreamCollectorResource, error_after_s: float = GAP_ERROR_AFTER_S) -> Outcome:
    now = time.time()
    gaps = [{**g.summary(now), **({"shard": label} if label else {})}
            for label, directory, _ in collector.shard_states() for g in read_gaps(directory)]
    old = [g for g in gaps if g["age_s"] > error_after_s]
    # Every reconnect opens a gap for the second its read takes: only a slow or failing one is news.
    troubled = [g for g in gaps if g["age_s"] > WARN_AFTER_S or g["attempts"]]
    if not gaps:
        description = "no open gaps: every interval the collector missed has been read back from PI"
    else:
        oldest = max(gaps, key=lambda g: g["age_s"])
        where = f" in shard {oldest['shard']}" if "shard" in oldest else ""
        description = (f"{len(gaps)} open gap(s) ({sum(g['streams'] for g in gaps)} stream intervals), oldest "
                       f"{oldest['age_s']:.0f}s{where} ({oldest['reason']}, {oldest['attempts']} failed reads"
                       + (f", last error {oldest['last_error']}" if oldest["last_error"] else "") + ")")
    return Outcome(
        NO_OPEN_GAPS,
        passed=not troubled,
        severity=dg.AssetCheckSeverity.ERROR if old else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"open_gaps": len(gaps), "oldest_gap_age_s": dg.MetadataValue.float(max((g["age_s"] for g in gaps), default=0.0)),
                  "gaps": dg.MetadataValue.json(gaps[:100])},
    )


def collector_problems(collector: StreamCollectorResource) -> Outcome:
    problems: list[dict] = []
    bad_tags: list[dict] = []
    for label, _, status in collector.shard_states():
        prefix = f"shard {label}: " if label else ""
        problems += [{**p, "message": prefix + p["message"]} for p in (status or {}).get("problems") or []]
        bad_tags += list((status or {}).get("bad_tags") or [])
    problems.sort(key=lambda p: p["severity"] != "ERROR")  # worst first, as each collector orders its own
    errors = [p for p in problems if p["severity"] == "ERROR"]
    description = "; ".join(p["message"] for p in problems[:10]) or "no problems reported by the collector"
    return Outcome(
        COLLECTOR_PROBLEMS,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"problems": dg.MetadataValue.json(problems),
                  "bad_tags": dg.MetadataValue.json([{k: b.get(k) for k in ("ref", "name", "web_id", "reason")}
                                                     for b in bad_tags])},
    )


@dg.asset_check(asset=STREAM_VALUES.key, name=NO_OPEN_GAPS,
                description="Every interval the collector missed (restart, channel down, failed backfill) was read back")
def no_open_gaps_check(stream_collector: StreamCollectorResource) -> dg.AssetCheckResult:
    return no_open_gaps(stream_collector).result()


@dg.asset_check(asset=STREAM_VALUES.key, name=COLLECTOR_PROBLEMS,
                description="No refused credentials, bad tags, WAL or commit failures reported by the collector")
def collector_problems_check(stream_collector: StreamCollectorResource) -> dg.AssetCheckResult:
    return collector_problems(stream_collector).result()


GAP_CHECKS = [no_open_gaps_check, collector_problems_check]
