"""`pi-platform stream`: run the collector, or show what a running collector is doing (`--status`).

The PI Web API connection comes from `PI_WEBAPI_*` variables (or `--url`), the lake from `PI_DELTA_ROOT` and
`PI_DELTA_STORAGE_OPTIONS` (or `--delta-root`), the state directory from `PI_STREAM_STATE_DIR` (or
`--state-dir`), all through pi_platform/settings.py, whose defaults do not depend on the current directory. The subscription
is the state directory's subscription.json (written by the Dagster sensor), seeded from `--web-id` /
`--tag` when the file does not exist yet.

Sharded (`--shard K/N`, shards.py), each collector is one shard with its own files under the state directory;
with `PI_STREAM_SHARDS` above 1 a plain `pi-platform stream` refuses to guess which shard it is, and
`--status` shows every shard of the configured count.
"""

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

from pi_platform import settings
from pi_platform.client import PIWebAPIConfig
from pi_platform.errors import ConfigError
from pi_platform.streaming.channel import ChannelOptions
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.streaming.gaps import iso_us
from pi_platform.streaming.shards import Shard, state_dirs
from pi_platform.streaming.snapshots import SnapshotOptions
from pi_platform.streaming.state import read_status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", action="store_true", help="print the running collector's status and exit")
    parser.add_argument("--json", action="store_true", help="with --status: print the raw status JSON")
    parser.add_argument("--state-dir", default=None,
                        help="WAL, status and subscription files (env PI_STREAM_STATE_DIR)")
    parser.add_argument("--delta-root", default=None,
                        help="Delta lake root holding stream_values (env PI_DELTA_ROOT)")
    parser.add_argument("--url", help="PI Web API base URL (env PI_WEBAPI_URL)")
    parser.add_argument("--name", default="collector", help="collector name: its Delta application id")
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help="run shard K of N: the tags whose WebID hashes to K (default 1/PI_STREAM_SHARDS)")
    parser.add_argument("--web-id", action="append", default=[],
                        help="stream WebId to subscribe, any type: Full, IDOnly, PathOnly (repeatable)")
    parser.add_argument("--tag", action="append", default=[],
                        help="PI point name or path (\\\\SERVER\\TAG) to subscribe (repeatable)")
    parser.add_argument("--bad-tag-retry", type=float, default=300.0,
                        help="seconds between retries of tags PI refused (unknown, deleted, forbidden; default 300)")
    parser.add_argument("--start", default="*", help="where never-committed streams start (PI time, default *)")
    parser.add_argument("--correction-lookback", type=float, default=600.0,
                        help="seconds before each stream's last committed value re-read on every reconnect, to catch "
                        "corrections made while disconnected (default 600)")
    parser.add_argument("--batch-age", type=float, default=1.0, help="seconds a micro-batch may wait (default 1)")
    parser.add_argument("--batch-bytes", type=int, default=16 << 20, help="raw JSON bytes per micro-batch")
    parser.add_argument("--buffer-bytes", type=int, default=256 << 20, help="in-memory buffer before back-pressure")
    parser.add_argument("--stop-drain", type=float, default=None,
                        help="seconds a stop keeps committing what was received; the rest stays in the WAL for the "
                        "next start (default: all of it; under Kubernetes, less than the pod's grace period)")
    parser.add_argument("--verify-settle", type=float, default=CollectorConfig.verify_settle_s,
                        help="seconds a late group (a PI correction) waits before it is read back, so one read and "
                        "rewrite answers every correction to that second meanwhile (default %(default)s)")
    parser.add_argument("--heartbeat-rate", type=int, default=5, help="channel heartbeatRate (0: none)")
    parser.add_argument("--dead-channel-timeout", type=float, default=60.0,
                        help="seconds without data or heartbeat before a channel is declared dead")
    parser.add_argument("--max-url-length", type=int, default=4096, help="split WebIds across channels above this")
    parser.add_argument("--include-initial-values", action="store_true", help="ask channels for current values")
    parser.add_argument("--compact-every", type=int, default=600,
                        help="compact stream_values every N commits, bounding its file count (0: only the maintenance job)")
    parser.add_argument("--no-fsync", action="store_true", help="do not fsync the WAL (benchmarks only)")
    parser.add_argument("--snapshot-interval", type=float, default=30.0,
                        help="seconds between polls of every tag's PI snapshot, for stale-tag checks (default 30)")
    parser.add_argument("--snapshot-rate", type=float, default=5.0,
                        help="requests per second the snapshot poll may make (default 5)")


def run(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir or settings.stream_state_dir())
    count = settings.stream_shards()
    shard = Shard.parse(args.shard) if args.shard else Shard(1, count)
    if args.status:
        return _print_status(state_dir, shard.count, as_json=args.json)
    if shard.count > 1 and not args.shard:
        raise ConfigError(f"PI_STREAM_SHARDS={count}: start one collector per shard, `pi-platform stream --shard K/{count}` "
                          f"for K = 1..{count} (in local mode the Dagster sensor starts them all)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per PI request is noise here
    pi = PIWebAPIConfig.from_settings(url=args.url)
    config = CollectorConfig(
        state_dir=state_dir,
        delta_root=args.delta_root or settings.delta_root(),
        storage_options=settings.storage_options(),
        name=args.name,
        shard=shard,
        channel=ChannelOptions(
            include_initial_values=args.include_initial_values,
            heartbeat_rate=args.heartbeat_rate,
            dead_channel_timeout_s=args.dead_channel_timeout,
            max_url_length=args.max_url_length,
        ),
        batch_max_bytes=args.batch_bytes,
        batch_max_age_s=args.batch_age,
        max_buffer_bytes=args.buffer_bytes,
        stop_drain_s=args.stop_drain,
        start=args.start,
        correction_lookback_s=args.correction_lookback,
        verify_settle_s=args.verify_settle,
        fsync=not args.no_fsync,
        compact_every_commits=args.compact_every,
        bad_tag_retry_s=args.bad_tag_retry,
        snapshots=SnapshotOptions(interval_s=args.snapshot_interval, max_requests_per_s=args.snapshot_rate),
    )
    asyncio.run(_run(config, pi, list(args.web_id), list(args.tag)))
    return 0


async def _run(config: CollectorConfig, pi: PIWebAPIConfig, web_ids: list[str], tags: list[str]) -> None:
    """Names, paths and WebIDs go into the subscription as given: the collector resolves each to its
    canonical WebID (and keeps that mapping), so it starts even while PI's REST side is down."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)  # graceful: flush the buffer, commit, release the lock
    await Collector(config, pi, web_ids + tags).run(stop)


def _print_status(state_dir: Path, count: int, *, as_json: bool) -> int:
    if count == 1:
        status = read_status(state_dir)
        if status is None:
            raise ConfigError(f"no collector status in {state_dir}: start one with `pi-platform stream` or fix --state-dir")
        statuses = {"1/1": status}
    else:
        statuses = {label: read_status(directory) for label, directory in state_dirs(state_dir, count).items()}
        if not any(statuses.values()):
            raise ConfigError(f"no status of any of {count} shards under {state_dir}: start them with "
                              f"`pi-platform stream --shard K/{count}` or fix --state-dir / PI_STREAM_SHARDS")
    if as_json:
        import orjson

        document = statuses["1/1"] if count == 1 else statuses
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if count == 1:
        sys.stdout.write(format_status(statuses["1/1"]))
        return 0
    for label, status in statuses.items():
        sys.stdout.write(f"== shard {label}\n" + (format_status(status) if status else "not started\n"))
    return 0


def format_status(status: dict) -> str:
    """A screenful for operators: is it alive, is data flowing, is anything wrong."""
    now = time.time()
    age = now - float(status.get("heartbeat_at") or 0)
    thr = status.get("throughput") or {}
    buf = status.get("buffer") or {}
    last = status.get("last_commit") or {}
    late = status.get("late_groups") or {}
    shard = f" shard {status['shard']}" if status.get("shard", "1/1") != "1/1" else ""
    lines = [
        f"collector {status.get('name')}{shard} pid {status.get('pid')}: {status.get('state')} "
        f"(heartbeat {age:.1f}s ago{', STALE' if age > 10 and status.get('state') == 'running' else ''})",
        f"PI Web API   {status.get('pi_url')}",
        f"table        {status.get('table_uri')}",
        f"subscription {status['subscription']['streams']} streams on {status['subscription']['connections']} connections",
        f"throughput   {thr.get('values_per_s', 0):.0f} values/s, latency p50 {_s(thr.get('latency_p50_s'))} "
        f"p99 {_s(thr.get('latency_p99_s'))}",
        f"buffer       {buf.get('records', 0)} messages, {buf.get('bytes', 0)} bytes, {buf.get('pending_reads', 0)} PI reads",
        f"reconnects   {status.get('reconnects', 0)} (dead channels {status.get('dead_channels', 0)})",
        f"corrections  {late.get('waiting', 0)} late groups waiting"
        + (f", the oldest {late['oldest_age_s']:.0f}s" if late.get("oldest_age_s") is not None else "")
        + f", {status.get('verified_groups', 0)} verified"
        + (f" (each read once {late['settle_s']:g}s old)" if late.get("settle_s") else ""),
        f"gaps         {len(status.get('gaps') or [])} open, {status['backfills'].get('running', 0)} being read, "
        f"{status['backfills'].get('closed', 0)} closed",
        "last commit  " + (f"Delta v{last['delta_version']} {last['mode']} {last['rows']} rows "
                            f"{now - last['committed_at']:.1f}s ago" if last else "none yet"),
        f"committed    {status.get('total_rows_committed', 0)} rows in {status.get('commits', 0)} commits",
    ]
    for problem in status.get("problems") or []:
        lines.append(f"{problem['severity']:<12} {problem['message']}")
    for gap in status.get("gaps") or []:
        lines.append(f"  gap {gap['id']} ({gap['reason']}): {gap['streams']} streams from {iso_us(gap['start_us'])} "
                     f"to {iso_us(gap['end_us']) if gap['end_us'] else 'now (channel down)'}, open "
                     f"{now - float(status.get('heartbeat_at') or now) + gap['age_s']:.0f}s, {gap['attempts']} failed "
                     "reads" + (f", last error {gap['last_error']}" if gap.get("last_error") else ""))
    for conn in status.get("connections", []):
        seen = conn.get("last_message_at")
        lines.append(
            f"  {conn['name']}: {conn['state']}, {conn['web_ids']} streams, {conn['messages']} messages, "
            f"{conn['reconnects']} reconnects" + (f", last message {now - seen:.1f}s ago" if seen else "")
            + (f", last error {conn['last_error_type']}: {conn['last_error']}" if conn.get("last_error") else "")
        )
    return "\n".join(lines) + "\n"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"
