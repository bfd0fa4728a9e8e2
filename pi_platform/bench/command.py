"""`pi-platform bench batch|stream|alerts|chaos`: rerunnable figures, written as JSON and printed.

    pi-platform bench batch --tags 1000 --tags 10000 --out bench-results/batch.json
    pi-platform bench stream
    pi-platform bench alerts --tags 1000 --hours 24
    pi-platform bench chaos --duration 300
"""

import argparse
import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pi_platform.client.config import DEFAULT_PAGE_SIZE
from pi_platform.errors import ConfigError
from pi_platform.pitime import parse_time

if TYPE_CHECKING:
    from pi_platform.bench.batch import BatchSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    batch = sub.add_parser("batch", help="one past day of N tags from the simulator into Delta, vs the parse floor")
    batch.add_argument("--tags", type=int, action="append", help="number of tags (repeatable; default 1000)")
    batch.add_argument("--out", default="bench-results/batch.json", help="JSON report path")
    batch.add_argument("--day", type=date.fromisoformat, help="UTC day to extract (default: yesterday)")
    batch.add_argument("--seed", type=int, default=42)
    batch.add_argument("--values-per-minute", type=float, default=1.0, help="per tag (default 1: 1,440 values a day)")
    batch.add_argument("--edge-tags", action="store_true", help="add the simulator's edge-case tags")
    batch.add_argument("--max-concurrency", type=int, default=8, help="client concurrent requests (default 8)")
    batch.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE, help=f"recorded maxCount (default {DEFAULT_PAGE_SIZE})")
    batch.add_argument("--max-requests-per-second", type=float, default=0.0, help="client rate limit (0: none)")
    batch.add_argument("--processes", type=int, default=1,
                       help="processes the extraction uses: N-1 read PI while this one validates and writes "
                            "(extract_recorded's `processes`; default 1, all in one)")
    batch.add_argument("--floor-tags", type=int, default=300, help="tags whose payloads measure the parse floor")
    batch.add_argument("--verify-tags", type=int, default=20, help="tags checked against ground truth")
    batch.add_argument("--now", type=_utc_time, help="freeze the simulator clock here (default: the start of the run)")
    batch.add_argument("--work-dir", help="where the temporary Delta lake goes (default: system temp)")
    batch.add_argument("--keep-lake", type=Path, help="write the Delta lake here and keep it (one --tags only)")
    batch.add_argument("--shards", type=int,
                       help="instead: the recorded_values asset through `dagster asset materialize` (multiprocess "
                       "executor), unsharded and in N tag shards, side by side (wall time, rows, identical)")
    stream = sub.add_parser("stream", help="sustained values/s into Delta and end-to-end latency of the collector")
    stream.add_argument("--out", default="bench-results/stream.json", help="JSON report path")
    stream.add_argument("--pipeline-seconds", type=float, help="how long the collector is fed pre-built messages")
    stream.add_argument("--live-seconds", type=float, help="how long latency is measured on live channels")
    stream.add_argument("--live-tags", type=int, help="tags subscribed in the live measurement")
    stream.add_argument("--warmup", type=float, dest="warmup_s",
                        help="seconds of live channels before each measured window (default 8; the plant's "
                        "corrections reach their steady rate 5 minutes after the channels open)")
    stream.add_argument("--work-dir", help="where the temporary lake and state go (default: system temp)")
    stream.add_argument("--live-rates", type=int, nargs="+", metavar="VALUES_PER_S",
                        help="also measure live channels at each total rate (over --live-tags) and report the highest "
                        "sustained one (all committed, latency not growing)")
    stream.add_argument("--live-only", action="store_true", help="skip the pipeline and paced measurements")
    stream.add_argument("--poll-interval", type=float, help="the simulator's channel poll interval, seconds")
    stream.add_argument("--correction-rate", type=float,
                        help="share of values the simulated plant corrects 5 s-5 min later (default 0.004, a stress "
                        "level; each costs the collector a read and a file rewrite, queued behind the fresh values: "
                        "the report's late_groups_waiting is the backlog left)")
    stream.add_argument("--shards", type=int,
                        help="instead: live channels into one unsharded collector process, then into N shard processes "
                        "committing to one table, side by side (values/s, latency, CPU per process)")
    alerts = sub.add_parser("alerts", help="false alarms and detection delays of the stale-tag check over a plant day")
    alerts.add_argument("--out", default="bench-results/alerts.json", help="JSON report path")
    alerts.add_argument("--tags", type=int, default=1000, help="regular tags (at least 200: two interfaces)")
    alerts.add_argument("--hours", type=float, default=24.0, help="simulated span (at least 11 h for the 4 failures)")
    alerts.add_argument("--step", type=float, default=30.0, help="seconds between snapshot polls (default 30)")
    alerts.add_argument("--flat-fraction", type=float, default=0.5, help="share of flat, setpoint-like tags")
    alerts.add_argument("--http-minutes", type=float, default=60.0, help="span also judged over HTTP (default 60)")
    alerts.add_argument("--seed", type=int, default=42)
    chaos = sub.add_parser("chaos", help="kill -9, channel drops, REST storms and a bad tag at once; values lost/doubled")
    chaos.add_argument("--out", default="bench-results/chaos.json", help="JSON report path")
    chaos.add_argument("--duration", type=float, default=300.0, help="seconds of fault injection (default 300)")
    chaos.add_argument("--seed", type=int, default=7, help="seeds the fault schedule")
    chaos.add_argument("--tags", type=int, default=6, help="regular tags per collector, EDGE tags added (default 6)")
    chaos.add_argument("--values-per-minute", type=float, default=600.0, help="per tag (default 600)")
    chaos.add_argument("--work-dir", help="where the lakes and state go (default: a temporary directory)")
    chaos.add_argument("--shards", type=int, default=1,
                       help="sharded collectors per subscription, committing concurrently to one table (default 1)")


def run(args: argparse.Namespace) -> int:
    if args.bench == "batch":
        return _batch(args)
    if args.bench == "alerts":
        return _alerts(args)
    if args.bench == "chaos":
        return _chaos(args)
    return _stream(args)


def _batch(args: argparse.Namespace) -> int:
    from pi_platform.bench.batch import BatchSettings, default_day, report, run_batch

    sizes = args.tags or [1000]
    if any(n < 1 for n in sizes):
        raise ConfigError(f"--tags must be positive (got {', '.join(map(str, sizes))})")
    if args.keep_lake and len(sizes) > 1:
        raise ConfigError("--keep-lake keeps one run's lake: give a single --tags with it")
    if args.processes < 1:
        raise ConfigError(f"--processes must be at least 1 (got {args.processes})")
    settings = BatchSettings(
        day=args.day or default_day(), seed=args.seed, values_per_minute=args.values_per_minute,
        edge_tags=args.edge_tags, max_concurrency=args.max_concurrency, page_size=args.page_size,
        max_requests_per_second=args.max_requests_per_second, floor_tags=args.floor_tags, verify_tags=args.verify_tags,
        processes=args.processes,
        frozen_now=args.now,
    )
    if args.shards is not None:
        return _batch_shards(args, sizes, settings)
    runs = []
    for n_tags in sizes:
        runs.append(run_batch(n_tags, settings, work_dir=args.work_dir, lake=args.keep_lake))
        _write(args.out, report(runs, settings))  # after every size: a long run keeps what it measured
    print(format_table(runs))
    print(f"report: {args.out}")
    return 0 if all(r["verified"] for r in runs) else 1


def _batch_shards(args: argparse.Namespace, sizes: list[int], settings: "BatchSettings") -> int:
    from pi_platform.bench import batch_shards

    if args.shards < 2 or len(sizes) != 1:
        raise ConfigError("--shards N: give N >= 2 and a single --tags (the unsharded run is measured alongside)")
    result = batch_shards.run_sharded(sizes[0], args.shards, settings, work_dir=args.work_dir)
    _write(args.out, result)
    print(batch_shards.format_table(result))
    print(f"report: {args.out}")
    return 0 if result["identical"] else 1


def format_table(runs: list[dict]) -> str:
    header = ("tags", "values", "wall s", "tags/s", "values/s", "peak RSS MB", "client CPU s", "sim CPU s",
              "sim share", "us/value", "floor us/v", "x floor", "typed parse us/v", "verified")
    lines = [header]
    for r in runs:
        lines.append((
            f"{r['tags']:,}", f"{r['rows']:,}", f"{r['wall_s']:.1f}", f"{r['tags_per_s']:.0f}", f"{r['values_per_s']:,.0f}",
            f"{r['peak_rss_bytes'] / 1e6:.0f}", f"{r['client_cpu_s']:.1f}",
            "?" if r["simulator_cpu_s"] is None else f"{r['simulator_cpu_s']:.1f}",
            "?" if r["simulator_cpu_share"] is None else f"{r['simulator_cpu_share']:.0%}",
            f"{r['client_cpu_us_per_value']:.2f}", f"{r['floor']['floor_us_per_value']:.2f}", f"{r['ratio_to_floor']:.2f}",
            f"{r['floor']['typed_parse_us_per_value']:.2f}",
            "yes" if r["verified"] else f"NO: {r['verify_problem']}",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines)


def _utc_time(text: str) -> datetime:
    """A PI time expression or ISO time, as an aware UTC datetime; a bad one is argparse's one-line usage error."""
    try:
        return parse_time(text)
    except Exception as exc:  # noqa: BLE001 - pitime raises its own types; argparse wants this one
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: {exc}") from None


def _stream(args: argparse.Namespace) -> int:
    from pi_platform.bench.stream import run_benchmark, run_sharded

    if args.shards is not None:
        if args.shards < 2:
            raise ConfigError(f"--shards {args.shards}: give 2 or more (it is compared with one collector)")
        options = {name: getattr(args, name) for name in ("live_seconds", "live_tags", "work_dir")}
        result = run_sharded(args.shards, **{k: v for k, v in options.items() if v is not None})
        _write(args.out, result)
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
        print(f"report: {args.out}")
        return 0
    if any(r < 1 for r in args.live_rates or []) or (args.poll_interval is not None and args.poll_interval <= 0):
        raise ConfigError("--live-rates and --poll-interval must be positive")
    if args.warmup_s is not None and args.warmup_s < 0:
        raise ConfigError(f"--warmup {args.warmup_s}: give seconds, 0 or more")
    if args.correction_rate is not None and not 0 <= args.correction_rate <= 1:
        raise ConfigError(f"--correction-rate {args.correction_rate}: give a share within 0..1 (e.g. 0.0005)")
    options = {name: getattr(args, name) for name in ("pipeline_seconds", "live_seconds", "live_tags", "work_dir",
                                                      "live_rates", "live_only", "warmup_s")}
    options["poll_interval_s"] = args.poll_interval
    options["correction_rate"] = args.correction_rate
    result = run_benchmark(**{k: v for k, v in options.items() if v is not None})
    _write(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"report: {args.out}")
    return 0


def _alerts(args: argparse.Namespace) -> int:
    from pi_platform.bench.alerts import AlertSettings, format_report, run_alerts, targets_met

    settings = AlertSettings(tags=args.tags, hours=args.hours, step_s=args.step, flat_fraction=args.flat_fraction,
                             http_minutes=args.http_minutes, seed=args.seed)
    result = run_alerts(settings)
    _write(args.out, result)
    print(format_report(result))
    print(f"targets {'met' if targets_met(result) else 'NOT met'}; report: {args.out}")
    return 0 if targets_met(result) else 1


def _chaos(args: argparse.Namespace) -> int:
    import tempfile

    from pi_platform.bench.chaos import ChaosSettings, format_report, lost_nothing, run_chaos
    from pi_platform.simulator.config import SimulatorConfig
    from pi_platform.simulator.server import SimulatorServer

    if args.shards < 1:
        raise ConfigError(f"--shards {args.shards}: give at least 1")
    settings = ChaosSettings(duration_s=args.duration, seed=args.seed, tags=args.tags, shards=args.shards)
    sim = SimulatorServer(SimulatorConfig(n_tags=max(args.tags + 8, 12), values_per_minute=args.values_per_minute)).start()
    try:
        with tempfile.TemporaryDirectory(dir=args.work_dir, prefix="pi-chaos-") as work:
            result = run_chaos(settings, sim, Path(work), say=lambda line: print(f"  {line}", flush=True))
    finally:
        sim.stop()
    _write(args.out, result)
    print(format_report(result))
    print(f"{'nothing lost' if lost_nothing(result) else 'VALUES LOST OR DOUBLED'}; report: {args.out}")
    return 0 if lost_nothing(result) else 1


def _write(path: str, data: dict) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
