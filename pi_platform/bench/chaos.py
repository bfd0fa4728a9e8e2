"""`pi-platform bench chaos`: everything that goes wrong at a plant at once, and the table still equals PI.

Two collectors run as real subprocesses against the simulator, one subscribed by tag name and one by WebID,
each with a tag PI does not know among the good ones. For `duration_s` a seeded schedule injects, at random
moments: `kill -9` of a collector (restarted after a random outage), channel drops, and REST 5xx/429 storms
that start with a channel drop so the reconnects' gap reads run into them. After a quiet period (faults off,
every gap closed) the plant's clock is frozen and each table is compared with the simulator's ground truth
(`plant.recorded`), row for row: values expected, committed, missing, doubled, differing, corrections.

With `shards` > 1 each of the two is N sharded collectors (`--shard K/N`) committing concurrently to one
table, and a kill -9 hits all N shards of it at once; the figures are then across shards.

The suite runs a short version (pi_platform_tests/streaming/test_chaos_combined.py); the
subprocess and table helpers here are the ones the streaming tests use.
"""

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from pi_platform import webid
from pi_platform.simulator.clock import to_us
from pi_platform.simulator.server import SimulatorServer
from pi_platform.simulator.values import NEVER
from pi_platform.streaming.gaps import read_gaps
from pi_platform.streaming.shards import Shard, all_shards
from pi_platform.streaming.state import CURSORS_FILE, read_json, read_status
from pi_platform.value_columns import VALUE_SCHEMA, sort_values

FAULT_KINDS = ("kill9", "channel_drop", "rest_storm")
_KEY = ["web_id", "timestamp", "position"]


@dataclass(frozen=True)
class ChaosSettings:
    duration_s: float = 300.0
    seed: int = 7
    tags: int = 6  # good regular tags per collector (the simulator's EDGE tags are added)
    pause_s: tuple[float, float] = (1.0, 3.0)  # between faults
    outage_s: tuple[float, float] = (0.3, 3.0)  # a killed collector stays down this long
    storm_s: tuple[float, float] = (2.0, 5.0)
    quiet_timeout_s: float = 120.0
    shards: int = 1  # collectors per subscription, committing concurrently to one table
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    subscriptions: tuple[str, ...] = ("by_name", "by_web_id")


class CollectorProcess:
    """`pi-platform stream` as a real subprocess in its own session (so kill -9 hits only it)."""

    def __init__(self, state_dir: Path, delta_root: Path, url: str, extra: list[str],
                 env: dict[str, str] | None = None, shard: Shard | None = None) -> None:
        self.root = state_dir
        self.shard = shard
        self.state_dir = shard.state_dir(state_dir) if shard else state_dir  # where its own files are
        self.delta_root = delta_root
        self.url = url
        self.extra = list(extra)
        self.env = dict(env or {})
        self.command = [sys.executable, "-m", "pi_platform.cli", "stream", "--state-dir", str(state_dir),
                        "--delta-root", str(delta_root), "--url", url, *extra,
                        *(["--shard", shard.label] if shard else [])]
        self.process: subprocess.Popen | None = None
        self.log = state_dir.parent / (f"collector-{shard.suffix}.log" if shard and shard.sharded else "collector.log")

    def start(self) -> "CollectorProcess":
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        return self

    def restarted(self) -> "CollectorProcess":
        """A new process on the same state directory and lake."""
        return CollectorProcess(self.root, self.delta_root, self.url, self.extra, self.env, self.shard).start()

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def status(self) -> dict:
        return read_status(self.state_dir) or {}

    def current(self) -> bool:
        """Its own status is written (not the previous process's)."""
        return self.process is not None and self.status().get("pid") == self.process.pid


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    """Poll until `predicate()` is truthy (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def table_values(delta_root: Path | str, storage_options: dict[str, str] | None = None) -> pa.Table:
    """stream_values of a local lake directory or an object-store root (with its delta-rs options)."""
    uri = f"{str(delta_root).rstrip('/')}/stream_values"
    if not DeltaTable.is_deltatable(uri, storage_options=storage_options):
        return VALUE_SCHEMA.empty_table()
    table = DeltaTable(uri, storage_options=storage_options).to_pyarrow_table()
    return table.select(VALUE_SCHEMA.names).cast(VALUE_SCHEMA)


def stream_rows(table: pa.Table, web_id: str, start_us: int, end_us: int) -> pa.Table:
    ts = table["timestamp"].cast(pa.int64())
    mask = pc.and_(pc.equal(table["web_id"], web_id),
                   pc.and_(pc.greater_equal(ts, start_us), pc.less_equal(ts, end_us)))
    return sort_values(table.filter(mask))


def utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, timezone.utc)


def compare(plant: Any, delta_root: Path | str, windows: dict[str, tuple[int, int]], now: datetime,
            storage_options: dict[str, str] | None = None) -> dict[str, int]:
    """Row-for-row figures of `stream_values` against the simulator's ground truth over each stream's window."""
    table = table_values(delta_root, storage_options)
    figures = Counter({k: 0 for k in ("expected", "committed", "missing", "doubled", "extra", "differing",
                                      "corrections_expected", "corrections_applied")})
    for web_id, (start_us, end_us) in windows.items():
        got = stream_rows(table, web_id, start_us, end_us)
        truth = stream_rows(plant.recorded(web_id, utc(start_us), utc(end_us), now=now).cast(got.schema),
                            web_id, start_us, end_us)
        got_keys, truth_keys = Counter(_rows(got, _KEY)), Counter(_rows(truth, _KEY))
        got_rows = set(_rows(got, got.schema.names))
        figures["expected"] += truth.num_rows
        figures["committed"] += got.num_rows
        figures["missing"] += sum((truth_keys - got_keys).values())
        figures["doubled"] += sum(n - 1 for n in got_keys.values() if n > 1)
        figures["extra"] += len(set(got_keys) - set(truth_keys))
        index = [truth.schema.names.index(c) for c in _KEY]
        present = [r for r in _rows(truth, truth.schema.names) if tuple(r[i] for i in index) in got_keys]
        figures["differing"] += sum(1 for r in present if r not in got_rows)
        corrected = truth.filter(truth["substituted"])
        figures["corrections_expected"] += corrected.num_rows
        figures["corrections_applied"] += sum(1 for r in _rows(corrected, corrected.schema.names) if r in got_rows)
    return dict(figures)


def _rows(table: pa.Table, columns: list[str]) -> list[tuple]:
    return list(zip(*(table[c].to_pylist() for c in columns), strict=True)) if table.num_rows else []


def unknown_point(plant: Any, tag: str) -> str:
    """A syntactically valid Full WebID of a point the simulator does not have."""
    server = webid.decode(plant.points[0].web_id).ids[0]
    return webid.encode_full("DP", (server,), f"{plant.data_server_name}\\{tag}", point_id=900_000 + len(tag))


def run_chaos(settings: ChaosSettings, sim: SimulatorServer, work_dir: Path,
              say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the schedule against `sim` (started, real clock) and return the figures."""
    started = time.monotonic()
    plant = sim.plant
    now_us = to_us(plant.clock.now())
    regular = [p for p in plant.points if not p.name.startswith("EDGE.")]
    # Tags whose profile has corrections first (not every tag's has), so corrections are part of the run.
    regular.sort(key=lambda p: not (plant.generator.block(p, now_us - 600_000_000, now_us).corr_at < NEVER).any())
    regular = regular[: settings.tags]
    points = regular + [p for p in plant.points if p.name.startswith("EDGE.")]
    bogus = unknown_point(plant, "CHAOS.UNKNOWN")
    args = ["--batch-age", "0.3", "--heartbeat-rate", "1", "--dead-channel-timeout", "3", "--start", "*-2m",
            "--bad-tag-retry", "10"]
    subscriptions = {
        "by_name": [a for p in points for a in ("--tag", p.name)] + ["--tag", "CHAOS.NO.SUCH.TAG"],
        "by_web_id": [a for p in points for a in ("--web-id", p.web_id)] + ["--web-id", bogus],
    }
    env = {"PI_WEBAPI_MAX_RETRIES": "2"}
    shards = all_shards(settings.shards) if settings.shards > 1 else [None]
    # kind -> its collectors: one, or one per shard (same state root and lake, committing concurrently)
    groups = {kind: [CollectorProcess(work_dir / kind / "state", work_dir / kind / "lake", sim.base_url,
                                      args + subscriptions[kind], env, shard) for shard in shards]
              for kind in settings.subscriptions}
    spawned = [c for group in groups.values() for c in group]
    rng = random.Random(settings.seed)
    faults: Counter[str] = Counter()
    admin = httpx.Client(base_url=sim.admin_url, timeout=10)
    try:
        for collector in spawned:
            collector.start()
        wait_until(lambda: all((c.status().get("commits") or 0) >= 2 for g in groups.values() for c in g), 90,
                   "first commits")
        say(f"{len(spawned)} collector process(es) committing after {time.monotonic() - started:.0f}s")
        chaos_end = time.monotonic() + settings.duration_s
        schedule = rng.sample(settings.fault_kinds, len(settings.fault_kinds))  # every kind once, then at random
        while time.monotonic() < chaos_end:
            kind = schedule.pop(0) if schedule else rng.choice(settings.fault_kinds)
            faults[kind] += 1
            if kind == "kill9":
                name = rng.choice(sorted(groups))
                # Kill collectors that are committing (not ones still starting up from the previous kill).
                wait_until(lambda: all(c.current() and (c.status().get("commits") or 0) >= 1 for c in groups[name]),
                           90, f"{name} committing again before the next kill")
                for collector in groups[name]:  # every shard at once: concurrent commits cut mid-way
                    collector.kill9()
                time.sleep(rng.uniform(*settings.outage_s))
                groups[name] = [c.restarted() for c in groups[name]]
                spawned.extend(groups[name])
                say(f"kill -9 {name} ({len(groups[name])} process(es)), restarted")
            elif kind == "channel_drop":
                admin.post("/channels/drop").raise_for_status()
                say("channels dropped")
            else:
                admin.post("/faults", json={"error_rate": rng.uniform(0.5, 1.0),
                                                  "status_429_rate": 0.2}).raise_for_status()
                admin.post("/channels/drop").raise_for_status()  # the reconnects' gap reads hit the storm
                faults["channel_drop"] += 1
                time.sleep(rng.uniform(*settings.storm_s))
                admin.post("/faults", json={"reset": True}).raise_for_status()
                say("REST storm over")
            time.sleep(rng.uniform(*settings.pause_s))

        admin.post("/faults", json={"reset": True}).raise_for_status()
        every = [c for group in groups.values() for c in group]
        crashes = sum(1 for c in every if c.process is not None and c.process.poll() is not None)

        def settled() -> bool:
            return all(c.current() and not c.status().get("gaps") and not read_gaps(c.state_dir)
                       and (c.status().get("commits") or 0) >= 1 for c in every)

        wait_until(settled, settings.quiet_timeout_s, "every gap closed after the faults stopped")
        say(f"faults over, every gap closed after {time.monotonic() - started:.0f}s")
        frozen = plant.clock.now()
        admin.post("/clock", json={"now": frozen.isoformat()}).raise_for_status()
        windows = {}
        for kind, group in groups.items():
            since = {k: int(v) for c in group for k, v in (read_json(c.state_dir / CURSORS_FILE) or {}).items()}
            windows[kind] = {p.web_id: (since[p.web_id], to_us(frozen)) for p in points}

        def converged() -> dict[str, dict[str, int]] | None:
            figures = {kind: compare(plant, g[0].delta_root, windows[kind], frozen) for kind, g in groups.items()}
            clean = all(f["missing"] == f["extra"] == f["differing"] == f["doubled"] == 0 for f in figures.values())
            return figures if clean else None

        try:
            figures = wait_until(converged, settings.quiet_timeout_s, "the tables to equal ground truth", interval=1.0)
        except AssertionError:
            figures = {kind: compare(plant, g[0].delta_root, windows[kind], frozen) for kind, g in groups.items()}
        say(f"compared with ground truth after {time.monotonic() - started:.0f}s")
        bad_tags = {kind: sorted(b["ref"] for c in g for b in c.status().get("bad_tags", []))
                    for kind, g in groups.items()}
        per_shard = {kind: {(c.shard.label if c.shard else "1/1"): c.status().get("total_rows_committed", 0)
                            for c in g} for kind, g in groups.items()}
        exit_codes = {kind: max(c.terminate() for c in g) for kind, g in groups.items()}
    finally:
        admin.close()
        for process in spawned:
            process.cleanup()
    totals = Counter()
    for f in figures.values():
        totals.update(f)
    return {
        "settings": asdict(settings),
        "tags_per_collector": len(points),
        "faults": dict(faults),
        "collectors": figures,
        "totals": dict(totals),
        "bad_tags_isolated": bad_tags,
        "rows_committed_since_last_start": per_shard,
        "collector_crashes": crashes,
        "exit_codes": exit_codes,
        "duration_s": round(time.monotonic() - started, 1),
    }


def format_report(report: dict[str, Any]) -> str:
    totals = report["totals"]
    lines = [
        "faults       " + ", ".join(f"{k} {v}" for k, v in sorted(report["faults"].items())),
        f"values       expected {totals['expected']:,}, committed {totals['committed']:,}, missing {totals['missing']}, "
        f"doubled {totals['doubled']}, extra {totals['extra']}, differing {totals['differing']}",
        f"corrections  {totals['corrections_applied']} of {totals['corrections_expected']} applied",
        "bad tags     " + "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in report["bad_tags_isolated"].items()),
        f"collectors   {report['collector_crashes']} crashed, exit codes {report['exit_codes']}"
        + (f", {report['settings']['shards']} shards each" if report["settings"]["shards"] > 1 else ""),
        f"duration     {report['duration_s']} s",
    ]
    return "\n".join(lines)


def lost_nothing(report: dict[str, Any]) -> bool:
    totals = report["totals"]
    return (totals["missing"] == totals["doubled"] == totals["extra"] == totals["differing"] == 0
            and totals["corrections_applied"] == totals["corrections_expected"]
            and report["collector_crashes"] == 0 and set(report["exit_codes"].values()) == {0})
