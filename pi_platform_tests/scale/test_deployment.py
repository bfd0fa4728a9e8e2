"""Dagster deployed as on several machines, here on one: instance storage in a real PostgreSQL (dagster-postgres),
and a gRPC code server, the webserver and the daemon as separate processes, with the workspace pointing at the
gRPC server. Through it run a backfill launched by the UI's GraphQL mutation (`launcher/backfill.py`) and the
stream sensor; what they did is read back from Postgres itself.

The backfill's recorded_values day is split into 2 tag shards (PI_RECORDED_SHARDS), which the code location's
default multiprocess executor runs as separate step processes; one shard's tags answer 503 once (and the client's
own retries are off), so that shard's step fails, is retried alone (RetryPolicy), and the committed day is still
identical, row for row, to the unsharded run's.

One module-scoped deployment serves every test here (starting it is most of the cost)."""

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import psycopg2
import pytest
import yaml

from pi_platform import sharding
from pi_platform.batch.recorded import extract_recorded
from pi_platform.batch.window import DayWindow
from pi_platform.client import PIWebAPIConfig
from pi_platform.launcher.backfill import DagsterAPI, Progress
from pi_platform.launcher.children import spawn, stop, stop_collector
from pi_platform.launcher.instance import POSTGRES_URL_ENV, sqlalchemy_url, write_instance_yaml
from pi_platform.simulator.config import SimulatorConfig
from pi_platform.simulator.server import SimulatorServer
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import RECORDED_VALUES, STREAM_VALUES
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import day_bounds
from pi_platform_tests.launcher.helpers import PLACE_VARIABLES, free_port, listening
from pi_platform_tests.scale.postgres import postgres_binaries, postgres_server

REPO = Path(__file__).resolve().parents[2]
DAY = date(2024, 3, 3)
BIN = Path(sys.executable).parent
SHARDS, FAILING_SHARD = 2, 1
SHARD_STEP = "recorded_values.extract_recorded_shard"


@dataclass
class Deployment:
    ui: str
    postgres: str
    root: Path
    lake: Path
    simulator: SimulatorServer
    victim: str  # the tag of shard FAILING_SHARD that answers 503 once
    start_daemon: Callable[[], None]  # idempotent

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    def query(self, sql: str, *args: object) -> list[tuple]:
        with psycopg2.connect(self.postgres) as connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def wait_until(self, condition, timeout_s: float, what: str, poll_s: float = 2.0):
        deadline = time.monotonic() + timeout_s
        while not (result := condition()):
            if time.monotonic() > deadline:
                tails = {p.name: p.read_text(errors="replace")[-1500:] for p in (self.root / "logs").glob("*.log")}
                pytest.fail(f"no {what} within {timeout_s:.0f} s; service logs: {tails}")
            time.sleep(poll_s)
        return result


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    postgres_binaries()  # skip (naming the package) before anything starts
    root = tmp_path_factory.mktemp("scale")
    home, lake, state, logs = root / "dagster_home", root / "lake", root / "stream", root / "logs"
    grpc_port, ui_port = free_port(), free_port()
    workspace = root / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": grpc_port, "location_name": "pi_platform"}}]}))
    simulator = SimulatorServer(SimulatorConfig(n_tags=12)).start()  # with the edge-case tags
    web_ids = [p.web_id for p in simulator.plant.points]
    victim = next(w for w in web_ids if sharding.shard_of(w, SHARDS) == FAILING_SHARD)
    started = []
    try:
        with postgres_server() as url:
            write_instance_yaml(REPO / "dagster.yaml", home, postgres=True)  # exactly what `up --postgres` writes
            env = {k: v for k, v in os.environ.items() if k not in PLACE_VARIABLES and not k.startswith("PI_STREAM_")}
            env.update({
                "DAGSTER_HOME": str(home), POSTGRES_URL_ENV: sqlalchemy_url(url), "PI_DELTA_ROOT": str(lake),
                "PI_WEBAPI_URL": simulator.base_url, "PI_WEBAPI_MAX_RETRIES": "0", "PI_RECORDED_SHARDS": str(SHARDS),
                # the collector streams every tag but the victim, so only the batch shard meets its failure
                "PI_STREAM_STATE_DIR": str(state), "PI_STREAM_SENSOR_DEFAULT": "running",
                "PI_STREAM_WEB_IDS": ",".join(w for w in web_ids if w != victim),
            })
            started.append(spawn([str(BIN / "dagster"), "code-server", "start", "-m", "pi_platform.defs.definitions",
                                  "-h", "127.0.0.1", "-p", str(grpc_port), "--location-name", "pi_platform"],
                                 env, root, logs / "code-server.log"))
            daemon: list[subprocess.Popen] = []

            def start_daemon() -> None:
                """Started by the first test that needs it: the daemon's backfill loop runs every 30 s, so a
                backfill launched before it starts is picked up at once."""
                if not daemon:
                    daemon.append(spawn([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, root,
                                        logs / "daemon.log"))

            deployment = Deployment("", url, root, lake, simulator, victim, start_daemon)
            deployment.wait_until(lambda: listening(grpc_port), 180, "gRPC code server", poll_s=0.5)
            started.append(spawn([str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1",
                                  "-p", str(ui_port)], env, root, logs / "webserver.log"))
            deployment.ui = f"http://127.0.0.1:{ui_port}"
            deployment.wait_until(lambda: _answers(f"{deployment.ui}/server_info"), 180, "webserver", poll_s=0.5)
            try:
                yield deployment
            finally:
                for process in daemon:  # first: its sensor would restart the collector
                    stop(process)
                _stop_services(started, state)  # while Postgres still runs
    finally:
        _stop_services(started, state)  # again (a no-op) if starting failed half-way
        simulator.stop()


def _stop_services(started: list[subprocess.Popen], state: Path) -> None:
    stop_collector(state)
    for process in started:  # the webserver and the code server stop together
        if process.poll() is None:
            process.terminate()
    for process in started:
        stop(process)


def test_sharded_backfill_runs_through_daemon_and_code_server_with_state_in_postgres(deployment: Deployment, tmp_path):
    deployment.simulator.faults.fail_streams([deployment.victim], times=1)
    api = DagsterAPI(deployment.ui)
    backfill_id = api.launch_backfill([RECORDED_VALUES.name], [DAY.isoformat()])
    deployment.start_daemon()
    # the run's end, not the backfill's: the daemon marks the backfill complete on its next 30 s loop
    progress: Progress = deployment.wait_until(lambda: (p := api.progress(backfill_id)).runs and all(
        r in ("SUCCESS", "FAILURE", "CANCELED") for r in p.runs) and p, 300, "finished backfill run")
    assert progress.runs == ["SUCCESS"], progress.line()

    # identical to the unsharded run (the one-process path: one read, one commit) and to the plant's truth
    unsharded = DeltaStore(str(tmp_path / "unsharded"))
    config = PIWebAPIConfig.from_env(url=deployment.simulator.base_url)
    extract_recorded(config, unsharded, [p.web_id for p in deployment.simulator.plant.points], DayWindow(DAY, DAY + timedelta(days=1)))
    sharded = DeltaStore(str(deployment.lake))
    start, end = day_bounds(DAY)
    got = sort_values(sharded.read(RECORDED_VALUES.name).select(VALUE_SCHEMA.names))
    assert got.equals(sort_values(unsharded.read(RECORDED_VALUES.name).select(VALUE_SCHEMA.names)))
    assert got.equals(truth.recorded(deployment.simulator.plant, start, end))
    assert sharded.info(RECORDED_VALUES.name).version == 0  # two shards, still one commit
    assert not any((deployment.lake / "_staging" / RECORDED_VALUES.name).glob("*"))  # staging removed

    # the steps, read from Postgres' event log: two shard processes, only the failed shard ran twice
    (run_id,) = [r for (r,) in deployment.query("SELECT run_id FROM run_tags WHERE key = 'dagster/backfill' AND value = %s",
                                                 backfill_id)]
    events = deployment.query("SELECT dagster_event_type, step_key, event FROM event_logs WHERE run_id = %s "
                              "AND step_key LIKE 'recorded_values.%%'", run_id)
    starts = Counter(step for kind, step, _ in events if kind in ("STEP_START", "STEP_RESTARTED"))
    assert [step for kind, step, _ in events if kind == "STEP_UP_FOR_RETRY"] == [f"{SHARD_STEP}[shard_{FAILING_SHARD}]"]
    assert starts == Counter({f"{SHARD_STEP}[shard_{i}]": 2 if i == FAILING_SHARD else 1 for i in range(SHARDS)}
                             | {"recorded_values.plan_recorded_shards": 1, "recorded_values.commit_recorded_day": 1})
    pids = {json.loads(body)["dagster_event"]["pid"] for kind, step, body in events
            if kind == "STEP_START" and step.startswith(SHARD_STEP)}
    assert len(pids) == SHARDS  # a process per shard step

    # the backfill, its run and the materialisation live in Postgres; no SQLite run storage was created
    assert deployment.query("SELECT status FROM runs WHERE run_id = %s", run_id) == [("SUCCESS",)]
    assert deployment.query("SELECT count(*) FROM bulk_actions WHERE key = %s", backfill_id) == [(1,)]
    assert (DAY.isoformat(),) in deployment.query(
        "SELECT partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = %s",
        json.dumps([RECORDED_VALUES.name]))
    assert not (deployment.home / "history").exists()


def test_stream_sensor_keeps_the_collector_running_with_ticks_in_postgres(deployment: Deployment):
    deployment.start_daemon()
    store = DeltaStore(str(deployment.lake))
    deployment.wait_until(lambda: store.exists(STREAM_VALUES.name) and store.read(STREAM_VALUES.name).num_rows > 0,
                          240, "stream_values rows from the collector the sensor started")
    deployment.wait_until(lambda: len(_sensor_ticks(deployment)) >= 2, 120, "two stream_collector sensor ticks in Postgres")
    # the sensor's runless check evaluations (tags_fresh, stream_flowing, ...) are stored in Postgres too
    checks = deployment.wait_until(lambda: deployment.query(
        "SELECT DISTINCT check_name FROM asset_check_executions WHERE asset_key = %s",
        json.dumps([STREAM_VALUES.name])), 120, "stream check evaluations in Postgres")
    assert {"stream_flowing", "tags_fresh"} <= {name for (name,) in checks}
    streamed = set(store.read(STREAM_VALUES.name)["web_id"].to_pylist())
    assert streamed and streamed <= {p.web_id for p in deployment.simulator.plant.points} - {deployment.victim}


def _sensor_ticks(deployment: Deployment) -> list[str]:
    return [body for (body,) in deployment.query("SELECT tick_body FROM job_ticks WHERE type = 'SENSOR'")
            if '"stream_collector"' in body]
