"""Helpers the Kerberos tests share: the simulator's URL by its SPN's host name, and the check that no token
reached a log."""

import re

from pi_platform.simulator.server import SimulatorServer
from pi_platform_tests.kerberos.realm import SERVICE_HOST

# A Negotiate token in a log: the header value itself, or the base64 of the SPNEGO (1.3.6.1.5.5.2) and Kerberos
# (1.2.840.113554.1.2.2) mechanism OIDs every initial token and every answer carries.
TOKEN = re.compile(r"Negotiate [A-Za-z0-9+/]{16,}|KwYBBQUC|KoZIhvcSAQIC")


def kerberos_url(sim: SimulatorServer) -> str:
    """The simulator's URL by the host name its SPN (HTTP/localhost) was registered for."""
    return sim.base_url.replace("127.0.0.1", SERVICE_HOST, 1)


def assert_no_tokens(text: str) -> None:
    assert not TOKEN.search(text), "a Kerberos token reached the logs"
