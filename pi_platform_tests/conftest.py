"""Shared fixtures: a real PI Web API simulator on a loopback port, stopped at teardown.

`simulator` is a 50-tag anonymous server; `make_simulator(**config)` starts servers with any
SimulatorConfig fields (auth, faults, frozen clock, size...). Both are function-scoped so faults and
pauses set by one test never leak into another.

`require_executable(name, package=...)`: a test that needs an OS package skips, naming the package, where it
is missing; CI (`.ci/run`) installs the packages and sets PI_PLATFORM_REQUIRE_OS_PACKAGES=1, which turns such a
skip into a failure. Request it (or a fixture built on it) before fixtures that start services, so a skip
costs nothing.
"""

import glob
import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from pi_platform import settings
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


def find_executable(name: str, *, package: str, alternatives: tuple[str, ...] = (), search: tuple[str, ...] = ()) -> str:
    """Path of `name` (or an alternative name) on PATH, else in the `search` directories (glob patterns, newest
    match first: Debian keeps PostgreSQL's binaries in /usr/lib/postgresql/<version>/bin, off PATH); skip, or
    fail under PI_PLATFORM_REQUIRE_OS_PACKAGES, if absent."""
    extra = os.pathsep.join(sorted((d for pattern in search for d in glob.glob(pattern)), reverse=True))
    for path_list in (None, extra) if extra else (None,):
        for candidate in (name, *alternatives):
            path = shutil.which(candidate, path=path_list)
            if path:
                return path
    reason = f"needs `{name}` from the OS package `{package}` (e.g. apt-get install -y {package})"
    if settings.require_os_packages():
        pytest.fail(f"{reason}; PI_PLATFORM_REQUIRE_OS_PACKAGES is set, so it must be installed", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def require_executable() -> Callable[..., str]:
    return find_executable
