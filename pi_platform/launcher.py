"""`pi-platform up`: the embedded simulator plus the Dagster UI and daemon, ready to materialise.

A new user has no PI server at hand; this starts the simulator as the PI Web API (unless PI_WEBAPI_URL points
at a real one), starts `dagster dev` on the project's workspace with a project-local DAGSTER_HOME, and launches
a backfill of the daily assets for yesterday (or a given range) exactly as the UI's Materialize button does, so
the UI shows data at once. Children run in their own process groups and are
killed as groups on exit, because processes started from some shells ignore SIGTERM.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from pi_platform.defs.calendar.schedules import DAILY_ASSETS
from pi_platform import settings
from pi_platform.errors import PlatformError
from pi_platform.streaming.state import LOCK_FILE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
UNFINISHED_BACKFILL = {"REQUESTED", "CANCELING", "FAILING"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address the Dagster UI binds (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    parser.add_argument("--simulator-port", type=int, default=settings.SIMULATOR_PORT,
                        help=f"embedded simulator port (default {settings.SIMULATOR_PORT})")
    parser.add_argument("--tags", type=int, default=1000, help="number of simulated PI points (default 1000)")
    parser.add_argument("--seed", type=int, default=42, help="simulator seed (default 42)")
    parser.add_argument(
        "--partition", default=None,
        help="day to materialise at start, YYYY-MM-DD, or a range YYYY-MM-DD...YYYY-MM-DD (default yesterday UTC)",
    )
    parser.add_argument("--no-run", action="store_true", help="start the services without launching a backfill")
    parser.add_argument(
        "--exit-after-run", action="store_true", help="wait for the backfill, print its outcome and stop everything"
    )


def run(args: argparse.Namespace) -> int:
    home = Path(os.environ.get("DAGSTER_HOME") or settings.project_home() / ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    # Children resolve the same defaults (settings.py); pinning them here keeps `dagster dev`'s code server
    # and the collector it starts on the paths this process reports, whatever their working directory.
    env.setdefault("PI_DELTA_ROOT", settings.delta_root(env))
    # Locally the stream sensor starts the collector (subscribed to every point) as soon as the daemon runs.
    env.setdefault("PI_STREAM_STATE_DIR", settings.stream_state_dir(env))
    env.setdefault("PI_STREAM_SENSOR_DEFAULT", "running")
    env.setdefault("PI_STREAM_NAME_FILTER", "*")
    children: list[subprocess.Popen] = []
    try:
        if not env.get("PI_WEBAPI_URL"):
            sim_url = f"http://{settings.SIMULATOR_HOST}:{args.simulator_port}"
            children.append(_spawn([_exe("pi-platform"), "simulate", "--port", str(args.simulator_port),
                                    "--tags", str(args.tags), "--seed", str(args.seed)], env))
            _wait_http(f"{sim_url}/piwebapi", "simulator", children[-1])
            env["PI_WEBAPI_URL"] = f"{sim_url}/piwebapi"
            print(f"PI Web API simulator: {env['PI_WEBAPI_URL']} ({args.tags} tags, seed {args.seed})", flush=True)
        ui = f"http://{args.host}:{args.port}"
        children.append(_spawn([_exe("dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
                                "-h", args.host, "-p", str(args.port)], env))
        _wait_http(f"{ui}/server_info", "Dagster UI", children[-1], timeout_s=180)
        print(f"Dagster UI: {ui}", flush=True)
        if not args.no_run:
            days = partition_days(args.partition)
            backfill_id = _launch_backfill(args.host, args.port, days)
            print(f"launched a backfill of the daily assets for {days[0]}..{days[-1]}: {ui}/runs/b/{backfill_id}", flush=True)
            if args.exit_after_run:
                status, runs = _wait_backfill(args.host, args.port, backfill_id)
                print(f"backfill {backfill_id} finished: {status}; runs: {runs}", flush=True)
                return 0 if runs and all(r == "SUCCESS" for r in runs) else 1
        if args.exit_after_run:
            return 0
        print("press Ctrl-C to stop", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(1)
        return 1
    finally:
        for child in reversed(children):
            _stop(child)
        _stop_collector(Path(env["PI_STREAM_STATE_DIR"]))


def _exe(name: str) -> str:
    """The console script next to this interpreter, so the venv's tools are used even if not on PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def _spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, start_new_session=True)


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _stop_collector(state_dir: Path) -> None:
    """The sensor starts the collector in its own session so it outlives sensor ticks; stop it with us."""
    try:
        pid = int((state_dir / LOCK_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        return
    if pid <= 0:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not process_alive(pid):
                return
            time.sleep(0.2)


def process_alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's exit status may never be reaped inside a container)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _wait_http(url: str, what: str, child: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise PlatformError(f"{what} exited with status {child.returncode} before it was ready; see its output above")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise PlatformError(f"{what} did not answer on {url} within {timeout_s:.0f} s; is the port already in use?")


def _graphql(host: str, port: int, query: str, variables: dict) -> dict:
    response = httpx.post(f"http://{host}:{port}/graphql", json={"query": query, "variables": variables}, timeout=60)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise PlatformError(f"Dagster refused the request: {body['errors'][0].get('message')}")
    return body["data"]


def partition_days(spec: str | None) -> list[str]:
    """`None` -> yesterday (UTC); `YYYY-MM-DD` -> that day; `A...B` -> every day from A to B inclusive."""
    if not spec:
        return [(datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")]
    first, _, last = spec.partition("...")
    try:
        start = datetime.strptime(first.strip(), "%Y-%m-%d")
        end = datetime.strptime((last or first).strip(), "%Y-%m-%d")
    except ValueError:
        raise PlatformError(f"--partition {spec!r}: use YYYY-MM-DD or YYYY-MM-DD...YYYY-MM-DD") from None
    if end < start:
        raise PlatformError(f"--partition {spec!r}: the range ends before it starts")
    return [(start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range((end - start).days + 1)]


_LAUNCH = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on PartitionSetNotFoundError { message } ... on InvalidSubsetError { message } } }
"""
_STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }
"""
_RUNS = """
query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
  ... on Runs { results { status } } } }
"""


def _launch_backfill(host: str, port: int, days: list[str]) -> str:
    """The mutation the UI sends for Materialize over partitions; the daemon turns it into runs (one for
    the whole range, since every daily asset has a single-run backfill policy)."""
    params = {"assetSelection": [{"path": [name]} for name in DAILY_ASSETS], "partitionNames": days, "fromFailure": False}
    result = _graphql(host, port, _LAUNCH, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise PlatformError(f"could not launch the backfill: {result.get('message') or result['__typename']}")
    return result["backfillId"]


def _wait_backfill(host: str, port: int, backfill_id: str, timeout_s: float = 1800) -> tuple[str, list[str]]:
    deadline = time.monotonic() + timeout_s
    status = "REQUESTED"
    while time.monotonic() < deadline:
        status = _graphql(host, port, _STATUS, {"id": backfill_id})["partitionBackfillOrError"].get("status", "")
        if status not in UNFINISHED_BACKFILL:
            break
        time.sleep(2)
    else:
        status = "TIMEOUT"
    runs = _graphql(host, port, _RUNS, {"id": backfill_id})["runsOrError"].get("results", [])
    return status, [run["status"] for run in runs]
