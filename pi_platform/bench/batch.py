"""`bench batch`: one past day of N tags, simulator -> client -> validated Delta, measured per process.

Three processes, so every figure belongs to one of them: the simulator (simproc.py), the extractor
(extract_worker.py, calling `extract_recorded`, the function the `recorded_values` asset calls), and this
orchestrator, which resolves the tag selection the way the asset does, reads the simulator's CPU from
/proc around the extraction, then captures a sample of the same payloads and measures the parse floor
(floor.py) and, on a few tags, checks the extracted rows against the plant's ground truth (verify.py).
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from pi_platform.batch import selection
from pi_platform.bench import floor, verify
from pi_platform.bench.machine import machine_info
from pi_platform.bench.procstat import CpuTimes, pid_cpu, pid_peak_rss_bytes
from pi_platform.bench.simproc import SimulatorProcess, SimulatorSpec
from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.client.config import DEFAULT_PAGE_SIZE

# A published PI-to-lake connector's figure for the same job (100,000 tags x 1 day).
PUBLISHED_CLAIM = {"tags": 100_000, "days": 1, "tags_per_s": 139.0, "minutes": 12.0}
# Issue 12's targets (2 cores, the simulator alongside); tags/s and values/s follow from the 5 minutes.
TARGETS = {"max_minutes_100k": 5.0, "min_tags_per_s": 100_000 / 300, "min_values_per_s": 145_000_000 / 300,
           "max_ratio_to_floor": 1.5, "max_peak_rss_bytes": 1.5e9}


@dataclass(frozen=True)
class BatchSettings:
    day: date
    seed: int = 42
    values_per_minute: float = 1.0
    edge_tags: bool = False
    max_concurrency: int = 8
    page_size: int = DEFAULT_PAGE_SIZE
    max_requests_per_second: float = 0.0  # 0: no client-side limit (the simulator is ours to load)
    processes: int = 1  # extract_recorded's: N-1 reader processes + the writer (client CPU and RSS include them all)
    floor_tags: int = 300  # tags whose payloads are captured for the floor
    verify_tags: int = 20  # tags whose extracted rows are compared with ground truth
    frozen_now: datetime | None = None  # simulator clock; default: the start of the run, frozen
    timeout_s: float = 3600.0

    def simulator(self, n_tags: int, now: datetime) -> SimulatorSpec:
        return SimulatorSpec(n_tags, self.seed, self.values_per_minute, self.edge_tags, now)


def default_day() -> date:
    return datetime.now(timezone.utc).date() - timedelta(days=1)


def run_batch(n_tags: int, settings: BatchSettings, *, work_dir: str | None = None, lake: Path | None = None) -> dict:
    """Run one size and return its figures (see `summarise` for the fields).

    The Delta lake goes to a temporary directory unless `lake` is given (then it is kept for inspection).
    """
    now = settings.frozen_now or datetime.now(timezone.utc).replace(microsecond=0)
    spec = settings.simulator(n_tags, now)
    with tempfile.TemporaryDirectory(prefix="pi-bench-", dir=work_dir) as tmp, SimulatorProcess(spec) as sim:
        started = time.perf_counter()
        web_ids = asyncio.run(_select(sim.base_url))
        selection_s = time.perf_counter() - started
        ids_file = Path(tmp, "web_ids.txt")
        ids_file.write_text("\n".join(web_ids))

        load_before = _load()
        sim_before = pid_cpu(sim.pid)
        worker = _extract(sim.base_url, lake or Path(tmp, "lake"), ids_file, settings)
        sim_cpu = _delta(pid_cpu(sim.pid), sim_before)
        worker["load_average_1m"] = {"before": load_before, "after": _load()}
        worker["simulator_peak_rss_bytes"] = pid_peak_rss_bytes(sim.pid)

        sample = _spread(web_ids, settings.floor_tags)
        figures = floor.measure(floor.capture(sim.base_url, sample, settings.day, page_size=settings.page_size))
        checked = _spread(web_ids, settings.verify_tags)
        problem = verify.differences(verify.ground_truth(spec, checked, settings.day),
                                     verify.extracted(worker["delta"]["uri"], checked))
        return summarise(worker, sim_cpu, figures, selection_s=selection_s, verified_tags=len(checked), problem=problem,
                         spec=spec)


def summarise(worker: dict, sim_cpu: CpuTimes | None, figures: floor.FloorFigures, *, selection_s: float,
              verified_tags: int, problem: str | None, spec: SimulatorSpec) -> dict:
    rows, wall, tags = worker["rows"], worker["wall_s"], worker["tags"]
    client_cpu = worker["cpu_user_s"] + worker["cpu_system_s"]
    client_per_value = client_cpu / rows if rows else None
    sim_total = sim_cpu.total_s if sim_cpu else None
    tags_per_s = tags / wall if wall else None
    return {
        "tags": tags,
        "rows": rows,
        "values_per_tag": rows / tags if tags else None,
        "quarantined": worker["quarantined"],
        "wall_s": wall,
        "tags_per_s": tags_per_s,
        "values_per_s": rows / wall if wall else None,
        "projected_minutes_100k_tags": 100_000 / tags_per_s / 60 if tags_per_s else None,
        "selection_s": selection_s,
        "peak_rss_bytes": worker["peak_rss_bytes"],  # writer + the sum of the reader processes' peaks
        "writer_peak_rss_bytes": worker["writer_peak_rss_bytes"],
        "reader_peak_rss_bytes": worker["reader_peak_rss_bytes"],
        "writer_rss_timeline": worker["writer_rss_timeline"],  # 0.1 s samples: a transient peak vs a level
        "rss_before_extract_bytes": worker["rss_before_bytes"],
        "client_cpu_s": client_cpu,
        "client_cpu_user_s": worker["cpu_user_s"],
        "client_cpu_system_s": worker["cpu_system_s"],
        "simulator_cpu_s": sim_total,
        "simulator_peak_rss_bytes": worker["simulator_peak_rss_bytes"],
        "simulator_cpu_share": sim_total / (sim_total + client_cpu) if sim_total is not None and client_cpu else None,
        "cpu_utilisation_of_machine": (client_cpu + (sim_total or 0)) / (wall * (os.cpu_count() or 1)) if wall else None,
        "client_cpu_us_per_value": client_per_value * 1e6 if client_per_value else None,
        "floor": figures.as_dict(),
        "ratio_to_floor": client_per_value / figures.floor_s_per_value if client_per_value else None,
        "verified_tags": verified_tags,
        "verified": problem is None,
        "verify_problem": problem,
        "client_warnings": worker["client_warnings"],
        "first_client_warning": worker["first_client_warning"],
        # Other work on the machine slows wall time (CPU figures hold): a busy machine shows here.
        "load_average_1m": worker["load_average_1m"],
        "delta": worker["delta"],
        "simulator": {"n_tags": spec.n_tags, "seed": spec.seed, "values_per_minute": spec.values_per_minute,
                      "edge_tags": spec.edge_tags, "now": spec.now.isoformat() if spec.now else None},
    }


def report(runs: list[dict], settings: BatchSettings) -> dict:
    return {
        "benchmark": "batch",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "day": settings.day.isoformat(), "seed": settings.seed, "values_per_minute": settings.values_per_minute,
            "edge_tags": settings.edge_tags, "max_concurrency": settings.max_concurrency,
            "page_size": settings.page_size, "max_requests_per_second": settings.max_requests_per_second or None,
            "processes": settings.processes,
            "floor_tags": settings.floor_tags, "verify_tags": settings.verify_tags,
        },
        "code_path": "pi_platform.batch.recorded.extract_recorded (the recorded_values asset's extraction)",
        "published_claim": PUBLISHED_CLAIM,
        "targets": TARGETS,
        "runs": runs,
    }


async def _select(base_url: str) -> list[str]:
    """Every point of the data server, resolved by the asset's own tag selection (no filters set)."""
    async with PIWebAPIClient(PIWebAPIConfig(url=base_url, max_requests_per_second=None)) as client:
        selected = await selection.resolve(client, selection.TagFilter())
    return selected["web_id"].to_pylist()


def _extract(base_url: str, lake: Path, ids_file: Path, settings: BatchSettings) -> dict:
    """Run the extracting process; its stdin stays open while we wait (it exits if this process dies)."""
    command = [
        sys.executable, "-m", "pi_platform.bench.extract_worker", "--url", base_url, "--delta-root", str(lake),
        "--day", settings.day.isoformat(), "--web-ids", str(ids_file), "--max-concurrency", str(settings.max_concurrency),
        "--page-size", str(settings.page_size), "--max-requests-per-second", str(settings.max_requests_per_second),
        "--processes", str(settings.processes), "--exit-with-parent",
    ]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=err, text=True, start_new_session=True)
        try:
            proc.wait(timeout=settings.timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdin:
                proc.stdin.close()
        out.seek(0)
        err.seek(0)
        output, errors = out.read(), err.read()
    if proc.returncode != 0:
        tail = errors.strip().splitlines()[-1] if errors.strip() else f"exit status {proc.returncode}"
        raise RuntimeError(f"extraction process failed: {tail}")
    return json.loads(output.strip().splitlines()[-1])


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _delta(after: CpuTimes | None, before: CpuTimes | None) -> CpuTimes | None:
    return after - before if after and before else None


def _spread(items: list[str], k: int) -> list[str]:
    """k items spread over the list (every point type, not just the first equipment's tags)."""
    if k >= len(items):
        return list(items)
    step = len(items) / k
    return [items[int(i * step)] for i in range(k)]
