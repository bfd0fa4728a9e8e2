"""`pi-platform up`: the embedded simulator plus the Dagster UI and daemon, ready to materialise.

A new user has no PI server at hand; this starts the simulator as the PI Web API (unless PI_WEBAPI_URL points
at a real one), starts `dagster dev` on the project's workspace with a project-local DAGSTER_HOME, and launches
a backfill of the daily assets for yesterday (or a given range) exactly as the UI's Materialize button does, so
the UI shows data at once. In order: take the instance lock (one `up` per Dagster home and state directory),
run the preflight (nothing has started if it fails), start the children, then report the backfill's progress
and the collector's status until the backfill ends (`--exit-after-run`) or a signal arrives. Any of SIGINT,
SIGTERM, SIGHUP stops everything in order: Dagster first (so its sensor cannot restart the collector), then the
collector (it flushes and commits), then the simulator.
"""

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from pi_platform import settings
from pi_platform.errors import PlatformError
from pi_platform.feed.mqtt import MqttConfig
from pi_platform.launcher.backfill import DagsterAPI, Progress
from pi_platform.launcher.children import Stopped, hold_signals, spawn, stop, stop_collector, stop_on_signals
from pi_platform.launcher.instance import POSTGRES_URL_ENV, check_postgres, safe_location, sqlalchemy_url, write_instance_yaml
from pi_platform.launcher.lock import Holder, InstanceLock, stop_leftovers
from pi_platform.launcher.preflight import run_preflight
from pi_platform.launcher.stream_status import status_line
from pi_platform.streaming.shards import state_dirs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POLL_S = 2.0
# `dg dev` (which the warning recommends) needs dagster-dg-cli and a dg project; `dagster dev` is the supported
# 1.x command for a workspace.yaml, so its supersession notice is noise here.
_DEV_WARNING = "ignore:Function `dev_command` is superseded"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address the Dagster UI binds (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    parser.add_argument("--simulator-port", type=int, default=settings.SIMULATOR_PORT,
                        help=f"embedded simulator port (default {settings.SIMULATOR_PORT}; unused with PI_WEBAPI_URL)")
    parser.add_argument("--viewer-port", type=int, default=None,
                        help="web viewer port (default PI_VIEWER_PORT, else 3100)")
    parser.add_argument("--tags", type=int, default=1000, help="number of simulated PI points (default 1000)")
    parser.add_argument("--seed", type=int, default=42, help="simulator seed: same seed, same plant (default 42)")
    parser.add_argument(
        "--partition", default=None, metavar="DAY[...DAY]",
        help="day(s) of the plant (PI_PARTITION_TIMEZONE) to backfill at start: YYYY-MM-DD, or YYYY-MM-DD...YYYY-MM-DD for a range (default yesterday)",
    )
    parser.add_argument("--no-run", action="store_true", help="start the services without launching a backfill")
    parser.add_argument("--exit-after-run", action="store_true",
                        help="wait for the backfill, print its outcome per table, stop everything; exit 1 if it failed")
    parser.add_argument("--status-every", type=float, default=30, metavar="SECONDS",
                        help="print the stream collector's status this often (default 30)")
    parser.add_argument("--postgres", default=None, metavar="URL",
                        help="keep Dagster's runs, events and schedules in this Postgres, e.g. "
                        "postgresql://user:password@host:5432/dagster (default PI_DAGSTER_POSTGRES_URL, else SQLite)")


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: Path


class Terminal:
    """Progress rewritten in place on a terminal; one line per change when the output is a file or pipe."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.tty = out.isatty()
        self._live = ""

    def live(self, line: str) -> None:
        if line == self._live:
            return
        self.out.write(("\r\033[K" + line) if self.tty else line + "\n")
        self.out.flush()
        self._live = line

    def say(self, line: str) -> None:
        if self.tty and self._live:
            self.out.write("\n")
        self._live = ""
        print(line, file=self.out, flush=True)


def run(args: argparse.Namespace) -> int:
    home = Path(os.environ.get("DAGSTER_HOME") or settings.project_home() / ".dagster_home").resolve()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    # Children resolve the same defaults (settings.py); pinning them here keeps `dagster dev`'s code server
    # and the collector it starts on the paths this process reports, whatever their working directory.
    env.setdefault("PI_DELTA_ROOT", settings.delta_root(env))
    # Locally the stream sensor starts the collector (subscribed to every point) as soon as the daemon runs.
    env.setdefault("PI_STREAM_STATE_DIR", settings.stream_state_dir(env))
    env.setdefault("PI_STREAM_SENSOR_DEFAULT", "running")
    env.setdefault("PI_STREAM_NAME_FILTER", "*")
    state_dir = Path(env["PI_STREAM_STATE_DIR"])
    lock = InstanceLock([home, state_dir])
    crashed = lock.acquire()  # a second `up` stops here, before touching anything of the first
    try:
        with stop_on_signals():
            return _up(args, env, home, state_dir, lock, crashed)
    finally:
        lock.release()


def _up(args: argparse.Namespace, env: dict[str, str], home: Path, state_dir: Path, lock: InstanceLock,
        crashed: list[Holder]) -> int:
    term = Terminal()
    children: list[Child] = []
    real_pi = settings.pi_url_is_set(env)
    local_collector = False
    try:
        for holder in crashed:  # before the preflight: what it left running may hold our ports
            stopped = stop_leftovers(holder)
            if stopped:
                term.say(f"a previous `pi-platform up` (pid {holder.pid}) ended without stopping; stopped what it "
                         f"left running (process groups {', '.join(map(str, stopped))})")
        ports = [(args.host, args.port, "Dagster UI", "--port")]
        if not real_pi:
            ports.append((settings.SIMULATOR_HOST, args.simulator_port, "simulator", "--simulator-port"))
        viewer_port = settings.viewer_port(env) if args.viewer_port is None else args.viewer_port
        ports.append((args.host, viewer_port, "viewer", "--viewer-port"))
        env["PI_VIEWER_PORT"] = str(viewer_port)  # Dagster's asset pages link to this viewer
        days = run_preflight(partition=args.partition, run_backfill=not args.no_run, ports=ports, real_pi=real_pi)
        postgres = args.postgres or settings.dagster_postgres_url(env)
        if postgres:  # unreachable or refused: one line, before anything starts
            check_postgres(postgres)
            env[POSTGRES_URL_ENV] = sqlalchemy_url(postgres)
        mqtt = MqttConfig.from_url(settings.mqtt_url(env)) if settings.mqtt_url(env) else None  # a bad URL: one line
        local_collector = settings.stream_mode(env) == "local"
        if crashed and local_collector and any([stop_collector(d) for d in _collector_dirs(state_dir)]):
            term.say("stopped the stream collector a previous `pi-platform up` left running")
        logs = home / "service-logs"  # not `logs`: Dagster's telemetry rotates and deletes that folder
        term.say(f"Dagster home {home}; lake {env['PI_DELTA_ROOT']}; service logs in {logs}/")
        if not real_pi:
            sim_url = f"http://{settings.SIMULATOR_HOST}:{args.simulator_port}"
            children.append(_start(lock, "simulator", [_exe("pi-platform"), "simulate", "--port", str(args.simulator_port),
                                   "--tags", str(args.tags), "--seed", str(args.seed)], env, PROJECT_ROOT, logs))
            _wait_http(f"{sim_url}/piwebapi", children[-1])
            env["PI_WEBAPI_URL"] = f"{sim_url}/piwebapi"
            term.say(f"PI Web API simulator: {env['PI_WEBAPI_URL']} ({args.tags} tags, seed {args.seed})")
        else:
            term.say(f"PI Web API: {settings.pi_url(env)} (preflight passed)")
        children.append(_start(lock, "viewer", [_exe("pi-platform"), "viewer", "--host", args.host, "--port",
                               str(viewer_port)], env, PROJECT_ROOT, logs))
        _wait_http(f"http://{args.host}:{viewer_port}/api/tables", children[-1])
        term.say(f"viewer: http://{args.host}:{viewer_port} (AF hierarchy, event frames and alarms, live values, ingestion)")
        write_instance_yaml(PROJECT_ROOT / "dagster.yaml", home, postgres=bool(postgres))
        if postgres:
            term.say(f"Dagster storage: Postgres at {safe_location(postgres)}")
        ui = f"http://{args.host}:{args.port}"
        # Run from DAGSTER_HOME: `dagster dev` warns about any other dagster.yaml in its working directory.
        children.append(_start(lock, "Dagster", [sys.executable, "-W", _DEV_WARNING, "-m", "dagster", "dev", "-w",
                               str(PROJECT_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)],
                               env, home, logs))
        term.say("starting Dagster (UI, daemon, code server): the first start takes up to a minute")
        _wait_http(f"{ui}/server_info", children[-1], timeout_s=180)
        lock.record(ui=ui)
        term.say(f"Dagster UI: {ui}")
        if mqtt is not None:  # PI_MQTT_URL set: fan committed stream values out, from its checkpoint
            children.append(_start(lock, "MQTT-publisher", [_exe("pi-platform"), "publish"], env, PROJECT_ROOT, logs))
            term.say(f"MQTT publisher: stream values to {mqtt.safe_url()}, topics {settings.mqtt_topic_prefix(env)}/...")
        # Imported only now: the definitions read the calendar settings at import, which the preflight checks.
        from pi_platform.defs.calendar.schedules import FIRST_RUN_ASSETS

        api = DagsterAPI(ui)
        backfill_id = None
        if days:
            backfill_id = api.launch_backfill(FIRST_RUN_ASSETS, days)
            term.say(f"launched a backfill of {len(FIRST_RUN_ASSETS)} daily assets x {len(days)} day(s) "
                     f"({days[0]}..{days[-1]}): {ui}/runs/b/{backfill_id}")
        if args.exit_after_run and backfill_id is None:
            return 0
        return _watch(term, api, backfill_id, FIRST_RUN_ASSETS, state_dir, children, args)
    except Stopped as signal_received:
        term.say(f"{signal_received} received: stopping")
        return 0
    finally:
        _shutdown(term, children, state_dir, local_collector)


def _watch(term: Terminal, api: DagsterAPI, backfill_id: str | None, assets: list[str], state_dir: Path,
           children: list[Child], args: argparse.Namespace) -> int:
    """Report until the backfill ends (with --exit-after-run) or forever; a child dying ends it with an error."""
    progress: Progress | None = None
    next_status = time.monotonic() + min(args.status_every, 10)
    if backfill_id is None:
        term.say("press Ctrl-C to stop")
    while True:
        for child in children:
            if child.process.poll() is not None:
                raise PlatformError(f"{child.name} stopped unexpectedly (exit status {child.process.returncode}); "
                                    f"see {child.log}")
        if backfill_id is not None and (progress is None or not progress.finished):
            progress = api.progress(backfill_id)
            if not progress.finished:
                term.live(progress.line())
            else:
                term.say(progress.line())
                term.say(f"backfill {backfill_id} {'succeeded' if progress.succeeded else 'FAILED'}; per table:")
                for line in progress.summary(assets):
                    term.say(line)
                if args.exit_after_run:
                    return 0 if progress.succeeded else 1
                term.say("press Ctrl-C to stop")
        if time.monotonic() >= next_status:
            for directory in _collector_dirs(state_dir):
                term.say(status_line(directory))
            next_status = time.monotonic() + args.status_every
        time.sleep(POLL_S)


def _shutdown(term: Terminal, children: list[Child], state_dir: Path, local_collector: bool) -> None:
    """Dagster first (its sensor would restart the collector), then the collector, then the simulator."""
    hold_signals()
    if not children and not local_collector:
        return
    by_name = {child.name: child for child in children}
    if "MQTT-publisher" in by_name:  # a reader of the lake: stopping it first loses nothing (checkpoint)
        term.say("stopping the MQTT publisher ...")
        stop(by_name["MQTT-publisher"].process)
    if "viewer" in by_name:  # a reader of the lake too
        term.say("stopping the viewer ...")
        stop(by_name["viewer"].process)
    if "Dagster" in by_name:
        term.say("stopping Dagster (UI, daemon, runs) ...")
        stop(by_name["Dagster"].process)
    for directory in _collector_dirs(state_dir) if local_collector else []:
        if stop_collector(directory):
            term.say(f"stopped the {status_line(directory)}")
    if "simulator" in by_name:
        term.say("stopping the simulator ...")
        stop(by_name["simulator"].process)
    if children:
        term.say("stopped; nothing left running")


def _collector_dirs(state_dir: Path) -> list[Path]:
    """The state directory of each stream collector the sensor runs: one per shard (PI_STREAM_SHARDS)."""
    return list(state_dirs(state_dir, settings.stream_shards()).values())


def _start(lock: InstanceLock, name: str, cmd: list[str], env: dict[str, str], cwd: Path, logs: Path) -> Child:
    log = logs / f"{name.lower()}.log"
    process = spawn(cmd, env, cwd, log)
    lock.record(group=process.pid)  # its own session: pid == process group, for recovery after a crash
    return Child(name, process, log)


def _exe(name: str) -> str:
    """The console script next to this interpreter, so the venv's tools are used even if not on PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def _wait_http(url: str, child: Child, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise PlatformError(f"{child.name} exited with status {child.process.returncode} before it was ready; "
                                f"see {child.log}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise PlatformError(f"{child.name} did not answer on {url} within {timeout_s:.0f} s; see {child.log}")
