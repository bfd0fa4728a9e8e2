"""Summary fixtures: one frozen-clock simulator whose chosen tags cover every summary rule, and an HTTP client.

Tags: a continuous Float32 (interpolated), an Int32 (stepped), a digital tag, EDGE.SystemRun (three hours in
four are only system states: bad values), EDGE.SameTs (many values at one timestamp).
"""

from datetime import date, datetime, timezone

import httpx
import pytest

from pi_platform.simulator.server import SimulatorServer
from pi_platform_tests.simulator.conftest import swagger, validate  # noqa: F401 - the swagger response validator

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=timezone.utc)  # every test day is complete
DAY = date(2024, 3, 3)
DAY_START = datetime(2024, 3, 3, tzinfo=timezone.utc)
TAGS = ("Pump00001.Flow", "Pump00001.Speed", "Pump00001.Mode", "EDGE.SystemRun", "EDGE.SameTs")


@pytest.fixture
def sim(make_simulator) -> SimulatorServer:
    return make_simulator(n_tags=5, now=NOW)


@pytest.fixture
def http(sim: SimulatorServer):
    with httpx.Client(base_url=sim.base_url + "/", timeout=60) as client:
        yield client


@pytest.fixture
def points(sim: SimulatorServer) -> dict:
    return {name: sim.plant.point_by_name(name) for name in TAGS}
