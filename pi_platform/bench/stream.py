"""`pi-platform bench stream`: how fast the collector commits values to Delta, and how late they land.

Three measurements, because the simulator cannot produce 100,000 values/s on two cores next to the collector:

- **pipeline**: the collector's full path (WAL append + fsync, parse, reconcile, pandera, Delta commit) fed
  with pre-built channel messages from 4 concurrent "sockets" as fast as back-pressure lets it: sustained
  values/s into Delta.
- **paced**: the same path fed at a fixed rate (default 10,000 values/s) with values stamped at emission:
  the collector's own latency p50/p99 from value timestamp to Delta commit.
- **live**: the simulator in its own process pushes `tags x values_per_minute` over real channels; end-to-end
  latency is commit time minus each value's own PI timestamp (so it includes the server's poll interval,
  as it would with a real PI Web API), reported as p50/p99 with the committed rate, the receive lag (value
  timestamp -> received: the server's share), the latency's growth over the window, and the CPU of the
  simulator process and of the collector over the same window. `live_rates` repeats it per total rate
  (each with its own simulator process) and names the highest one sustained (>= 95 % committed, latency
  not growing): the live throughput limit.

`--shards N` instead runs the live measurement twice with collectors as real `pi-platform stream`
processes against one simulator process: one unsharded collector, then N shards (`--shard K/N`) committing
concurrently to one table, side by side: values/s, latency p50/p99 and CPU per process.
"""

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from pi_platform.bench.chaos import CollectorProcess, wait_until
from pi_platform.bench.machine import machine_info
from pi_platform.bench.procstat import pid_cpu, pid_peak_rss_bytes, self_cpu, self_peak_rss_bytes
from pi_platform.bench.simproc import SimulatorProcess, SimulatorSpec
from pi_platform.client import PIWebAPIConfig
from pi_platform.simulator.values import CORRECTION_RATE
from pi_platform.storage import DeltaStore
from pi_platform.streaming.channel import ChannelOptions
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.storage.tables import STREAM_VALUES
from pi_platform.streaming.shards import all_shards
from pi_platform.streaming.state import write_subscription

_HOUR_PLACEHOLDER = b"2020-01-01T00"


def _templates(streams: int, values_per_stream: int, count: int) -> list[bytes]:
    """Channel messages (streamsets shape) whose hour prefix is rewritten per replay, so every replay is new data."""
    out = []
    for t in range(count):
        items = []
        for s in range(streams):
            values = [
                {"Timestamp": f"2020-01-01T00:{(t * values_per_stream + i) // 60 % 60:02d}:"
                              f"{(t * values_per_stream + i) % 60:02d}.{s:06d}Z",
                 "Value": float(s + i) / 7.0, "UnitsAbbreviation": "", "Good": True, "Questionable": False,
                 "Substituted": False, "Annotated": False}
                for i in range(values_per_stream)
            ]
            items.append({"WebId": f"BENCH{s:06d}", "Name": f"BENCH.{s:06d}", "Path": "", "Links": {},
                          "Items": values, "UnitsAbbreviation": ""})
        out.append(orjson.dumps({"Links": {}, "Items": items}))
    return out


async def _start(config: CollectorConfig) -> tuple[Collector, asyncio.Event, asyncio.Task[None]]:
    write_subscription(config.state_dir, [])
    collector = Collector(config, PIWebAPIConfig(url="http://127.0.0.1:9/piwebapi"))  # PI is never contacted
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    await collector.ready.wait()
    return collector, stop, task


async def _pipeline(work: Path, seconds: float, streams: int, values_per_stream: int, feeders: int = 4) -> dict:
    """Unpaced: as many values as the collector accepts (WAL back-pressure), from `feeders` concurrent sockets."""
    templates = _templates(streams, values_per_stream, count=3600 // values_per_stream // 6)
    config = CollectorConfig(state_dir=work / "pipeline-state", delta_root=str(work / "pipeline-lake"), name="bench")
    collector, stop, task = await _start(config)
    fed = 0
    started = time.perf_counter()
    cpu0 = self_cpu()

    async def feed(feeder: int) -> None:
        """One socket: its own streams, hours in increasing order (so nothing is late)."""
        nonlocal fed
        hour = 0
        own = f'"WebId":"F{feeder}BENCH'.encode()
        while time.perf_counter() - started < seconds:
            prefix = f"20{10 + hour // 8760:02d}-{1 + hour // 672 % 12:02d}-{1 + hour // 24 % 28:02d}T{hour % 24:02d}".encode()
            for template in templates:
                payload = template.replace(_HOUR_PLACEHOLDER, prefix).replace(b'"WebId":"BENCH', own)
                await collector._on_message(f"bench#{feeder}", payload)  # noqa: SLF001 - the sockets' entry point
                fed += streams * values_per_stream
            hour += 1

    await asyncio.gather(*(feed(i) for i in range(feeders)))
    stop.set()
    await task
    wall = time.perf_counter() - started
    committed = collector.metrics.total_rows
    return {
        "values_fed": fed,
        "values_committed": committed,
        "complete": committed == fed,
        "commits": collector._commits,  # noqa: SLF001
        "wall_s": round(wall, 2),
        "values_per_s": round(committed / wall),
        "cpu_s": round((self_cpu() - cpu0).total_s, 2),
    }


async def _paced(work: Path, seconds: float, rate: int, streams: int, tick_s: float = 0.1) -> dict:
    """Paced at `rate` values/s, each value stamped with its emission time: the collector's own latency."""
    config = CollectorConfig(state_dir=work / "paced-state", delta_root=str(work / "paced-lake"), name="bench-paced",
                             batch_max_age_s=0.25)
    collector, stop, task = await _start(config)
    collector.metrics.all_latencies = []
    per_tick = max(1, round(rate * tick_s / streams))
    names = [f"BENCH{s:06d}" for s in range(streams)]
    started = time.perf_counter()
    cpu0 = self_cpu()
    ticks = 0
    while time.perf_counter() - started < seconds:
        now_us = time.time_ns() // 1000
        stamps = np.datetime_as_string(np.array([now_us - k for k in range(per_tick)], dtype="datetime64[us]"))
        items = [{"WebId": name, "Name": name, "Links": {}, "UnitsAbbreviation": "",
                  "Items": [{"Timestamp": f"{t}Z", "Value": float(k), "Good": True, "Questionable": False,
                             "Substituted": False, "Annotated": False} for k, t in enumerate(stamps)]}
                 for name in names]
        await collector._on_message("bench#1", orjson.dumps({"Links": {}, "Items": items}))  # noqa: SLF001
        ticks += 1
        await asyncio.sleep(max(0.0, started + ticks * tick_s - time.perf_counter()))
    stop.set()
    await task
    latencies = np.concatenate(collector.metrics.all_latencies or [np.zeros(0)])
    return {
        "target_values_per_s": rate,
        "values_per_s": round(collector.metrics.total_rows / (time.perf_counter() - started)),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "latency_p99_s": round(float(np.percentile(latencies, 99)), 3),
        "latency_max_s": round(float(latencies.max()), 3),
        "samples": int(len(latencies)),
        "cpu_s": round((self_cpu() - cpu0).total_s, 2),
    }


async def _live(work: Path, sim_url: str, web_ids: list[str], seconds: float, warmup_s: float,
                sim_pid: int | None = None, name: str = "live") -> dict:
    # The stop after the window drains for at most 10 s: behind a storm of corrections the late groups still waiting
    # (kept in pending_groups.json for a next start) took over ten minutes to verify at 50,000 values/s.
    config = CollectorConfig(state_dir=work / f"{name}-state", delta_root=str(work / f"{name}-lake"),
                             name=f"bench-{name}", batch_max_age_s=0.25, channel=ChannelOptions(heartbeat_rate=2),
                             stop_drain_s=10.0)
    write_subscription(config.state_dir, web_ids)
    collector = Collector(config, PIWebAPIConfig(url=sim_url, max_requests_per_second=None))
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    await asyncio.sleep(warmup_s)  # subscription, channels open, the initial backfill committed
    settled = await _settle(collector)
    collector.metrics.all_latencies = []
    rows0, cpu0, t0, since = collector.metrics.total_rows, self_cpu(), time.perf_counter(), time.time()
    verified0 = collector.status()["verified_groups"]
    sim0 = pid_cpu(sim_pid) if sim_pid else None
    await asyncio.sleep(seconds)
    commits = collector.metrics.all_latencies
    rows, wall = collector.metrics.total_rows - rows0, time.perf_counter() - t0
    cpu = (self_cpu() - cpu0).total_s
    sim1 = pid_cpu(sim_pid) if sim_pid else None
    status = collector.status()
    connections = status["subscription"]["connections"]
    verified = status["verified_groups"] - verified0
    stop.set()
    await task
    latencies = np.concatenate(commits or [np.zeros(0)])
    receive_lag = _receive_lag(config, since)
    sim_cpu = None if sim0 is None or sim1 is None else (sim1 - sim0).total_s
    return {
        "streams": len(web_ids),
        "values_per_s": round(rows / wall),
        "latency_p50_s": _percentile(latencies, 50),
        "latency_p99_s": _percentile(latencies, 99),
        "latency_max_s": round(float(latencies.max()), 3) if len(latencies) else None,
        "samples": int(len(latencies)),
        "collector_cpu_s": round(cpu, 2),
        "collector_cpu_percent": round(100 * cpu / wall, 1),
        "window_s": round(wall, 1),
        "connections": connections,
        # value timestamp -> received by the collector: the server's share (poll interval, its own load)
        "receive_lag_p50_s": receive_lag[0],
        "receive_lag_p99_s": receive_lag[1],
        # the same window's simulator process: its CPU and its share of the CPU both processes used
        "simulator_window_cpu_s": None if sim_cpu is None else round(sim_cpu, 2),
        "simulator_cpu_percent": None if sim_cpu is None else round(100 * sim_cpu / wall, 1),
        "simulator_cpu_share": None if sim_cpu is None else round(sim_cpu / (sim_cpu + cpu), 3),
        "latency_growth_s": _growth(commits),
        # late or corrected groups read back from PI (mostly the plant's corrections): each costs a read, and a
        # rewrite of the file holding it when PI's content differs
        "verified_groups_per_s": round(verified / wall, 1),
        # late groups still waiting for their read at the window's end (`streaming/pending.py`): a backlog that grew
        # through the window is corrections arriving faster than the collector could rewrite files beside the fresh
        # values it kept committing
        "late_groups_waiting": status["late_groups"]["waiting"],
        "late_groups_oldest_age_s": _round(status["late_groups"]["oldest_age_s"]),
        "settled_before_window": settled,
    }


async def _settle(collector: Collector, timeout_s: float = 120.0) -> bool:
    """Wait until the start-up backlog is worked off, so the window measures the steady state: no open gap, no
    backfill read pending, at most a few messages per channel buffered. A fixed warm-up alone once left the
    backfill's commits in the window (p99 5 s at a rate that was otherwise 0.9 s). False when it never settles."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = collector.status()
        buffer = status["buffer"]
        if (status["commits"] >= 3 and not status["gaps"] and buffer["pending_reads"] == 0
                and buffer["records"] <= 4 * max(status["subscription"]["connections"], 1)):
            return True
        await asyncio.sleep(0.25)
    return False


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def _growth(commits: list[np.ndarray]) -> float | None:
    """Median latency of the window's second half of commits minus its first half: near 0 when the collector
    keeps up; a backlog shows as latency growing with time."""
    half = len(commits) // 2
    if half == 0:
        return None
    first, second = np.concatenate(commits[:half]), np.concatenate(commits[half:])
    if not len(first) or not len(second):
        return None
    return round(float(np.median(second) - np.median(first)), 3)


# A rate is sustained when nearly all of it is committed and the latency does not grow during the window.
SUSTAINED_SHARE = 0.95
SUSTAINED_GROWTH_S = 0.5


def _sustained(live: dict) -> bool:
    growth = live["latency_growth_s"]
    return (live["values_per_s"] >= SUSTAINED_SHARE * live["target_values_per_s"] and growth is not None
            and growth < SUSTAINED_GROWTH_S)


def _live_at(work: Path, tags: int, rate: int, seconds: float, warmup_s: float, poll_interval_s: float | None,
             correction_rate: float | None = None) -> dict:
    """One live measurement: its own simulator process with `tags` tags sending `rate` values/s in total, of which
    `correction_rate` are corrected later (None: the simulator's default)."""
    values_per_minute = rate * 60 / tags
    spec = SimulatorSpec(n_tags=tags, values_per_minute=values_per_minute, channel_poll_interval_s=poll_interval_s,
                         correction_rate=correction_rate)
    with SimulatorProcess(spec) as sim:
        from pi_platform.simulator.plant import Plant

        plant = Plant(n_tags=tags, values_per_minute=values_per_minute, edge_tags=False,
                      event_frames=False)  # same seed as the simulator process: same WebIds
        web_ids = [p.web_id for p in plant.points]
        sim_cpu0 = pid_cpu(sim.pid)
        # A directory of its own: a second run at the same rate must not restart on the first one's lake and WAL
        # (its restart gap's backfill then landed in the window: p99 3.6 s instead of 0.8 s).
        own = Path(tempfile.mkdtemp(prefix=f"live-{rate}-", dir=work))
        live = asyncio.run(_live(own, sim.base_url, web_ids, seconds, warmup_s, sim.pid, name=f"live-{rate}"))
        sim_cpu1 = pid_cpu(sim.pid)
    live["target_values_per_s"] = round(tags * values_per_minute / 60)
    live["simulator_cpu_s"] = None if sim_cpu0 is None or sim_cpu1 is None else round((sim_cpu1 - sim_cpu0).total_s, 2)
    live["poll_interval_s"] = poll_interval_s
    live["correction_rate"] = CORRECTION_RATE if correction_rate is None else correction_rate
    live["sustained"] = _sustained(live)
    return live


def _receive_lag(config: CollectorConfig, since_s: float = 0.0) -> tuple[float | None, float | None]:
    """Value timestamp -> received, over values received since `since_s` (the measured window, not the
    start-up backfill read through REST)."""
    table = DeltaStore(config.delta_root, config.storage_options).read(STREAM_VALUES.name, columns=["timestamp", "received_at"])
    received = table["received_at"].cast(pa.int64()).to_numpy()
    lag = (received - table["timestamp"].cast(pa.int64()).to_numpy()) / 1e6
    lag = lag[(lag < 60) & (received >= since_s * 1e6)]  # live values only, not the backfilled history
    if not len(lag):
        return None, None
    return round(float(np.percentile(lag, 50)), 3), round(float(np.percentile(lag, 99)), 3)


def _live_processes(work: Path, sim_url: str, web_ids: list[str], shards: int, seconds: float) -> dict:
    """`shards` collector processes (1: unsharded) on one lake, measured over `seconds` once all are committing
    and their start-up backfill is read: values/s from each one's committed-row count, latency p50/p99 from its
    status (the collector's rolling 30 s window: PI timestamp to Delta commit), CPU from /proc."""
    root, lake = work / f"live-{shards}-state", work / f"live-{shards}-lake"
    layout = all_shards(shards) if shards > 1 else [None]
    processes = []
    for shard in layout:
        write_subscription(shard.state_dir(root) if shard else root, web_ids)
        # a bounded stop: an overloaded collector would otherwise drain its whole backlog before exiting
        processes.append(CollectorProcess(root, lake, sim_url, ["--batch-age", "0.25", "--heartbeat-rate", "2",
                                                                "--stop-drain", "10"],
                                          shard=shard).start())
    try:
        wait_until(lambda: all(p.current() and (p.status().get("commits") or 0) >= 3 and not p.status().get("gaps")
                               for p in processes), 180, "every collector committing, its backfill read")
        start = [(p.status().get("total_rows_committed") or 0, pid_cpu(p.process.pid)) for p in processes]
        t0 = time.perf_counter()
        time.sleep(seconds)
        wall = time.perf_counter() - t0
        figures = []
        for process, (rows0, cpu0) in zip(processes, start, strict=True):
            status, cpu1 = process.status(), pid_cpu(process.process.pid)
            throughput = status.get("throughput") or {}
            cpu = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0).total_s
            figures.append({
                "shard": status.get("shard"),
                "streams": status["subscription"]["streams"],
                "values_per_s": round(((status.get("total_rows_committed") or 0) - rows0) / wall),
                "latency_p50_s": _round(throughput.get("latency_p50_s")),
                "latency_p99_s": _round(throughput.get("latency_p99_s")),
                "cpu_s": None if cpu is None else round(cpu, 2),
                "cpu_percent": None if cpu is None else round(100 * cpu / wall, 1),
                "peak_rss_bytes": pid_peak_rss_bytes(process.process.pid),
            })
        # --stop-drain 10 plus the batch in hand, which behind a backlog can be a merge of a minute or more
        exit_codes = [p.terminate(timeout=180) for p in processes]
    finally:
        for process in processes:
            process.cleanup()
    p99 = [f["latency_p99_s"] for f in figures if f["latency_p99_s"] is not None]
    return {"collectors": shards, "values_per_s": sum(f["values_per_s"] for f in figures), "window_s": round(wall, 1),
            "worst_latency_p99_s": max(p99, default=None), "processes": figures, "exit_codes": exit_codes}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run_sharded(shards: int, *, live_tags: int = 1000, live_values_per_minute: float = 600.0,
                live_seconds: float = 30.0, work_dir: str | None = None) -> dict:
    """The live measurement with one collector process, then with `shards`, against one simulator process."""
    work = Path(tempfile.mkdtemp(prefix="pi-bench-stream-", dir=work_dir))
    try:
        spec = SimulatorSpec(n_tags=live_tags, values_per_minute=live_values_per_minute)
        with SimulatorProcess(spec) as sim:
            from pi_platform.simulator.plant import Plant

            plant = Plant(n_tags=live_tags, values_per_minute=live_values_per_minute, edge_tags=False,
                          event_frames=False)  # same seed as the simulator process: same WebIds
            web_ids = [p.web_id for p in plant.points]
            runs = {}
            for count in (1, shards):
                sim_cpu0 = pid_cpu(sim.pid)
                runs[str(count)] = _live_processes(work, sim.base_url, web_ids, count, live_seconds)
                sim_cpu1 = pid_cpu(sim.pid)
                runs[str(count)]["simulator_cpu_s"] = (None if sim_cpu0 is None or sim_cpu1 is None
                                                       else round((sim_cpu1 - sim_cpu0).total_s, 2))
        return {"benchmark": "stream-shards", "machine": machine_info(), "tags": live_tags,
                "target_values_per_s": round(live_tags * live_values_per_minute / 60), "runs": runs}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_benchmark(*, pipeline_seconds: float = 20.0, pipeline_streams: int = 1000, values_per_stream: int = 10,
                  paced_rate: int = 10_000, paced_seconds: float = 20.0, live_tags: int = 1000,
                  live_values_per_minute: float = 600.0, live_seconds: float = 20.0, warmup_s: float = 8.0,
                  live_rates: list[int] | None = None, live_only: bool = False, poll_interval_s: float | None = None,
                  correction_rate: float | None = None, work_dir: str | None = None) -> dict:
    """All three measurements; returns the JSON report `pi-platform bench stream` writes (live default:
    1,000 tags x 600 values/min = 10,000 values/s through the simulator's channels). `live_rates` adds one
    live run per total rate (values/s over the same tags) and the highest one sustained; `live_only` skips
    the pipeline and paced measurements; `poll_interval_s` sets the simulator's channel poll interval and
    `correction_rate` the share of values its plant corrects later."""
    work = Path(tempfile.mkdtemp(prefix="pi-bench-stream-", dir=work_dir))
    try:
        report: dict = {"benchmark": "stream", "machine": machine_info()}
        if not live_only:
            report["pipeline"] = asyncio.run(_pipeline(work, pipeline_seconds, pipeline_streams, values_per_stream))
            report["paced"] = asyncio.run(_paced(work, paced_seconds, paced_rate, pipeline_streams))
        rate = round(live_tags * live_values_per_minute / 60)
        report["live"] = _live_at(work, live_tags, rate, live_seconds, warmup_s, poll_interval_s, correction_rate)
        if live_rates:
            runs = [_live_at(work, live_tags, r, live_seconds, warmup_s, poll_interval_s, correction_rate)
                    for r in live_rates]
            report["live_rates"] = runs
            report["max_sustained_live_values_per_s"] = max(
                (r["target_values_per_s"] for r in runs if r["sustained"]), default=None)
        report["peak_rss_bytes"] = self_peak_rss_bytes()
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)
