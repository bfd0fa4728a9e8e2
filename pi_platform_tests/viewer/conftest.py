"""Viewer fixtures, one set per test module (each is seconds of real work on a loaded machine):

- `plant_lake`: the daily assets materialised through Dagster for two days against a frozen simulator that
  injects per-value errors (so quarantine has rows), in a tmp lake;
- `live_stream`: a real-time simulator of the same plant (same seed, so the same WebIDs) and a real
  `pi-platform stream` collector committing a few of its tags into that lake's `stream_values`;
- `viewer`: `pi-platform viewer` as a real subprocess over both, stopped with SIGTERM (it must exit cleanly);
- `browser`: headless Chromium over the DevTools protocol (skips, naming the package, without `chromium`).
"""

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest

from pi_platform.bench.chaos import CollectorProcess, wait_until
from pi_platform.simulator.config import SimulatorConfig
from pi_platform.simulator.plant import Plant
from pi_platform.simulator.server import SimulatorServer
from pi_platform.storage import DeltaStore
from pi_platform.streaming.state import write_subscription
from pi_platform_tests.batch.conftest import ALL_ASSETS, DAY, NOW, Runner
from pi_platform_tests.conftest import find_executable
from pi_platform_tests.viewer.browser import Browser

SEED, TAGS = 42, 20
LIVE_TAGS = ("Tank00003.Level", "Tank00003.State", "Pump00001.Flow")  # a number, a digital state, a number


@dataclass
class PlantLake:
    root: Path
    store: DeltaStore
    plant: Plant
    viewer_links: dict[str, str]  # asset -> the "viewer" URL its materialisation carries


@dataclass
class LiveStream:
    plant: Plant
    collector: CollectorProcess
    state_dir: Path
    web_ids: dict[str, str]  # tag name -> WebID


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def plant_lake(tmp_path_factory) -> Iterator[PlantLake]:
    root = tmp_path_factory.mktemp("viewer") / "lake"
    server = SimulatorServer(SimulatorConfig(seed=SEED, n_tags=TAGS, now=NOW, edge_tags=False,
                                             faults={"value_error_rate": 0.002})).start()
    try:
        with dg.instance_for_test() as instance:
            result = Runner(server, root, instance).materialize(ALL_ASSETS, day=DAY, days=2)
            assert result.success
            links = {event.asset_key.path[-1]: event.materialization.metadata["viewer"].url
                     for event in result.get_asset_materialization_events()}
    finally:
        server.stop()
    yield PlantLake(root, DeltaStore(str(root)), server.plant, links)


@pytest.fixture(scope="module")
def live_stream(plant_lake: PlantLake) -> Iterator[LiveStream]:
    server = SimulatorServer(SimulatorConfig(seed=SEED, n_tags=TAGS, edge_tags=False, values_per_minute=60)).start()
    web_ids = {p.name: p.web_id for p in server.plant.points if p.name in LIVE_TAGS}
    state_dir = plant_lake.root.parent / "stream"
    write_subscription(state_dir, list(web_ids.values()), start="*")
    collector = CollectorProcess(state_dir, plant_lake.root, server.base_url,
                                 ["--batch-age", "0.3", "--snapshot-interval", "2"]).start()
    try:
        # Commits alone can be empty (a marker, a backfill of nothing yet): the tests need a committed value of
        # every live tag, the digital one included, which changes less often than the numbers.
        wait_until(lambda: _streamed(plant_lake.store) >= set(web_ids.values()), 90,
                   "a committed value of every live tag")
        yield LiveStream(server.plant, collector, state_dir, web_ids)
    finally:
        collector.cleanup()
        server.stop()


def _streamed(store: DeltaStore) -> set[str]:
    if not store.exists("stream_values"):
        return set()
    return set(store.read("stream_values", columns=["web_id"])["web_id"].to_pylist())


@pytest.fixture(scope="module")
def viewer(plant_lake: PlantLake, live_stream: LiveStream) -> Iterator[str]:
    port, log = free_port(), plant_lake.root.parent / "viewer.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pi_platform.cli", "viewer", "--port", str(port), "--delta-root",
             str(plant_lake.root), "--state-dir", str(live_stream.state_dir)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/api/tables", timeout=5).status_code == 200
        except httpx.HTTPError:
            assert process.poll() is None, log.read_text()
            return False

    try:
        wait_until(answers, 60, "the viewer to answer")
        yield url
        assert "Traceback" not in log.read_text(), log.read_text()  # no request failed inside the viewer
        process.send_signal(signal.SIGTERM)  # as `pi-platform up`'s shutdown sends it: uvicorn stops gracefully,
        assert process.wait(30) in (0, -signal.SIGTERM)  # then re-raises the signal it handled
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    chromium = find_executable("chromium", package="chromium", alternatives=("chromium-browser",))
    started = Browser(chromium, tmp_path_factory.mktemp("chromium"))
    yield started
    started.close()
