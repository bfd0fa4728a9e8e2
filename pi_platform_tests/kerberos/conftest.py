"""Kerberos fixtures: one throwaway realm (a real MIT KDC on loopback) per test session and worker, and per test
an environment pointing MIT krb5 at it with an empty ticket cache of its own (`ticket` fills it with `kinit`).

Tests skip naming the Debian package where the KDC tools or the GSS-API library are missing; CI
(PI_PLATFORM_REQUIRE_OS_PACKAGES=1) fails instead.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pi_platform import gss, settings
from pi_platform.simulator.server import SimulatorServer
from pi_platform_tests.conftest import find_executable
from pi_platform_tests.kerberos.realm import PACKAGES, Realm, executables


@pytest.fixture(scope="session")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    found = executables()
    tools = {name: found[name] or find_executable(name, package=package) for name, package in PACKAGES.items()}
    if not gss.available():
        reason = f"needs {gss.LIBRARY} from the OS package `{gss.DEBIAN_PACKAGE}`"
        if settings.require_os_packages():
            pytest.fail(f"{reason}; PI_PLATFORM_REQUIRE_OS_PACKAGES is set, so it must be installed", pytrace=False)
        pytest.skip(reason)
    started = Realm(tmp_path_factory.mktemp("realm"), tools).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def ccache(realm: Realm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's default ticket cache (KRB5CCNAME), empty: the user has not run kinit yet."""
    for name, value in realm.env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "krb5cc"
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{path}")
    return path


@pytest.fixture
def ticket(realm: Realm, ccache: Path) -> Path:
    """The user's ticket cache after `kinit`."""
    realm.kinit(ccache)
    return ccache


@pytest.fixture
def kerberos_simulator(realm: Realm, make_simulator: Callable[..., SimulatorServer]) -> Callable[..., SimulatorServer]:
    """Simulators that require Kerberos (or `auth=` another mode) with the realm's HTTP/localhost keytab."""

    def make(**config: object) -> SimulatorServer:
        config.setdefault("auth", "kerberos")
        config.setdefault("keytab", str(realm.service_keytab))
        return make_simulator(**config)

    return make
