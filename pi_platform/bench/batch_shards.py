"""`bench batch --shards N`: one recorded_values day through Dagster itself, unsharded and in N tag shards.

Both runs are `dagster asset materialize` on the code location, so they run the asset's real graph (plan, shard
steps, one commit) under Dagster's default multiprocess executor, one process per step, against the same
simulator process; the bench imports no Dagster definitions (it sits below `defs`). Figures: wall time of each
run (process start to exit, Dagster's own start-up included), rows committed, and whether the two days are
identical row for row.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow as pa

from pi_platform.bench.batch import BatchSettings
from pi_platform.bench.machine import machine_info
from pi_platform.bench.simproc import SimulatorProcess
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import RECORDED_VALUES
from pi_platform.value_columns import VALUE_SCHEMA, sort_values


def run_sharded(n_tags: int, shards: int, settings: BatchSettings, *, work_dir: str | None = None) -> dict:
    now = settings.frozen_now or datetime.now(timezone.utc).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="pi-bench-shards-", dir=work_dir) as tmp, \
            SimulatorProcess(settings.simulator(n_tags, now)) as sim:
        runs = [_materialize(sim.base_url, Path(tmp) / f"shards-{n}", n, settings) for n in (1, shards)]
        days = [_day(Path(run.pop("lake")), settings) for run in runs]
    identical = days[0].equals(days[1])
    return {"benchmark": "batch-shards", "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "tags": n_tags, "day": settings.day.isoformat(),
            "values_per_minute": settings.values_per_minute, "runs": runs, "identical": identical}


def _materialize(pi_url: str, root: Path, shards: int, settings: BatchSettings) -> dict:
    home, lake = root / "dagster_home", root / "lake"
    home.mkdir(parents=True)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PI_DELTA_ROOT": str(lake), "PI_WEBAPI_URL": pi_url,
           "PI_WEBAPI_MAX_CONCURRENCY": str(settings.max_concurrency), "PI_WEBAPI_PAGE_SIZE": str(settings.page_size),
           "PI_WEBAPI_MAX_REQUESTS_PER_SECOND": str(settings.max_requests_per_second or "none")}
    config = {"ops": {"recorded_values": {"config": {"shards": shards}}}}
    dagster = Path(sys.executable).with_name("dagster")
    started = time.perf_counter()
    done = subprocess.run([str(dagster), "asset", "materialize", "-m", "pi_platform.defs.definitions",
                           "--select", RECORDED_VALUES.name, "--partition", settings.day.isoformat(),
                           "--config-json", json.dumps(config)], env=env, cwd=home, capture_output=True, text=True,
                          timeout=settings.timeout_s)
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"dagster asset materialize ({shards} shards) failed: {done.stderr[-2000:]}")
    store = DeltaStore(str(lake))
    info = store.info(RECORDED_VALUES.name)
    return {"shards": shards, "wall_s": round(wall_s, 2), "rows": store.read(RECORDED_VALUES.name, columns=["web_id"]).num_rows,
            "delta_version": info.version, "delta_bytes": info.size_bytes, "steps_s": _step_seconds(home),
            "lake": str(lake), "load_average_1m": os.getloadavg()[0]}


def _step_seconds(home: Path) -> dict[str, float]:
    """Each step's duration as Dagster recorded it (process start-up excluded), by step key."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        stats = instance.get_run_step_stats(run.run_id)
    return {s.step_key.removeprefix("recorded_values."): round(s.end_time - s.start_time, 2)
            for s in stats if s.start_time and s.end_time}


def _day(lake: Path, settings: BatchSettings) -> pa.Table:
    day = settings.day
    rows = DeltaStore(str(lake)).read_range(RECORDED_VALUES.name, "event_date", day, day + timedelta(days=1))
    return sort_values(rows.select(VALUE_SCHEMA.names))


def format_table(result: dict) -> str:
    lines = [("run", "shards", "wall s", "slowest shard step s", "commit step s", "rows", "Delta commits")]
    for run in result["runs"]:
        steps = run["steps_s"]
        shard_s = max((v for k, v in steps.items() if k.startswith("extract_recorded_shard")), default=0.0)
        lines.append(("unsharded" if run["shards"] == 1 else "sharded", str(run["shards"]), f"{run['wall_s']:.1f}",
                      f"{shard_s:.1f}", f"{steps.get('commit_recorded_day', 0.0):.1f}", f"{run['rows']:,}",
                      str(run["delta_version"] + 1)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    table = "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines)
    return f"{table}\nidentical row for row: {'yes' if result['identical'] else 'NO'}"
