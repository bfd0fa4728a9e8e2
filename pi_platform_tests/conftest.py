"""Shared fixtures: a real PI Web API simulator on a loopback port, stopped at teardown.

`simulator` is a 50-tag anonymous server; `make_simulator(**config)` starts servers with any
SimulatorConfig fields (auth, faults, frozen clock, size...). Both are function-scoped so faults and
pauses set by one test never leak into another.
"""

from collections.abc import Callable, Iterator

import pytest

from pi_platform.simulator.config import SimulatorConfig
from pi_platform.simulator.server import SimulatorServer


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., SimulatorServer]]:
    servers: list[SimulatorServer] = []

    def make(**config: object) -> SimulatorServer:
        config.setdefault("n_tags", 50)
        server = SimulatorServer(SimulatorConfig(**config))  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def simulator(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    return make_simulator()
