"""`pi-platform doctor` against a Kerberos-only simulator and a real KDC: it gets in with a ticket, and every
way Kerberos commonly fails is one line saying the cause in domain terms and the fix."""

import asyncio
import io
import struct
import subprocess
import sys
import time
import uuid

import pytest

from pi_platform.client.config import PIWebAPIConfig
from pi_platform.client.doctor import diagnose
from pi_platform_tests.kerberos.support import kerberos_url


def doctor(url: str, **config: object) -> tuple[int, str]:
    out = io.StringIO()
    code = asyncio.run(diagnose(PIWebAPIConfig(url=url, auth="kerberos", max_retries=0, timeout_s=30, **config), out))
    return code, out.getvalue()


def only_problem(text: str) -> str:
    problems = [line for line in text.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 1, text
    return problems[0]


def test_doctor_gets_in_with_a_ticket(kerberos_simulator, ticket, realm):
    sim = kerberos_simulator(n_tags=4)
    code, text = doctor(kerberos_url(sim))
    assert code == 0, text
    assert sim.app.negotiate.accepted[realm.user] >= 2


def test_no_ticket_says_kinit_or_keytab(kerberos_simulator, ccache):
    sim = kerberos_simulator(n_tags=4)
    code, text = doctor(kerberos_url(sim))
    line = only_problem(text)
    assert code == 1
    assert "no ticket" in line and "kinit" in line and "PI_WEBAPI_KEYTAB" in line, line


def test_expired_ticket_says_expired(kerberos_simulator, ccache, realm):
    sim = kerberos_simulator(n_tags=4)
    realm.kinit(ccache, "-l", "2s")
    deadline = time.monotonic() + 60
    while realm.run("klist", "-s", "-c", f"FILE:{ccache}", check=False).returncode == 0:  # klist -s: 1 once expired
        assert time.monotonic() < deadline, "the 2 s ticket never expired"
        time.sleep(0.2)
    line = only_problem(doctor(kerberos_url(sim))[1])
    assert "Kerberos: the ticket has expired" in line, line
    assert "kinit" in line


def test_unregistered_spn_is_named_exactly(kerberos_simulator, ticket, realm):
    sim = kerberos_simulator(n_tags=4)
    line = only_problem(doctor(sim.base_url)[1])  # by IP address: HTTP/127.0.0.1 was never registered
    assert f"service principal HTTP/127.0.0.1@{realm.spn.split('@')[1]} is not registered" in line, line
    assert "setspn -S HTTP/127.0.0.1" in line


def test_clock_skew_is_reported_as_such(kerberos_simulator, ticket):
    """Real skew without faking the system clock: MIT krb5 keeps the client's offset from the KDC's clock in
    the ticket cache header (the DeltaTime tag `kdc_timesync` maintains) and stamps requests with it, so an
    offset of one hour makes this client's Kerberos clock run an hour ahead of the KDC's, and the KDC
    answers KRB_AP_ERR_SKEW exactly as a domain controller does to a machine whose clock drifted."""
    sim = kerberos_simulator(n_tags=4)
    cache = bytearray(ticket.read_bytes())
    assert cache[:8] == bytes.fromhex("0504000c00010008")  # version 4, one header tag: DeltaTime (sec, usec)
    cache[8:12] = struct.pack(">i", 3600)
    ticket.write_bytes(bytes(cache))
    line = only_problem(doctor(kerberos_url(sim))[1])
    assert "clock skew" in line and "synchronise this machine's clock" in line, line


def test_server_without_negotiate_lists_what_it_offers(kerberos_simulator, ticket):
    sim = kerberos_simulator(n_tags=4, auth="basic,bearer")
    line = only_problem(doctor(kerberos_url(sim))[1])
    assert "does not offer Kerberos" in line and "offers: Basic, Bearer" in line, line


@pytest.mark.parametrize("auth", ["bearer,kerberos", "kerberos,bearer,basic"])
def test_simulator_refuses_bearer_with_kerberos_like_pi(auth, realm):
    from pi_platform.errors import ConfigError
    from pi_platform.simulator.config import SimulatorConfig

    with pytest.raises(ConfigError, match="cannot enable Bearer and Kerberos together"):
        SimulatorConfig(auth=auth, keytab=str(realm.service_keytab))


def test_cli_doctor_with_a_service_account_keytab(kerberos_simulator, ccache, realm):
    """The command a service-account setup is checked with: no kinit, the keytab and principal as flags."""
    sim = kerberos_simulator(n_tags=4)
    done = subprocess.run(
        [sys.executable, "-m", "pi_platform.cli", "doctor", "--url", kerberos_url(sim), "--auth", "kerberos",
         "--keytab", str(realm.user_keytab), "--principal", realm.user],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("OK") and "auth: kerberos" in done.stdout
    assert sim.app.negotiate.accepted[realm.user] >= 2
    assert not ccache.exists()


def test_server_with_a_stale_keytab_is_blamed_not_the_client(kerberos_simulator, ticket, realm, tmp_path):
    """The SPN's key rotated in the domain (password reset of PI Web API's account) after its keytab was made:
    the server answers 401 with the KRB-ERROR, and the line points at the server's keytab/SPN."""
    spn = f"HTTP/rotated-{uuid.uuid4().hex[:8]}"
    realm.run("kadmin.local", "-q", f"addprinc -randkey {spn}")
    realm.run("kadmin.local", "-q", f"ktadd -k {tmp_path / 'old.keytab'} {spn}")
    realm.run("kadmin.local", "-q", f"ktadd -k {tmp_path / 'new.keytab'} {spn}")  # new key; old.keytab is stale
    sim = kerberos_simulator(n_tags=4, keytab=str(tmp_path / "old.keytab"))
    line = only_problem(doctor(sim.base_url, spn=spn)[1])
    assert f"refused the Kerberos ticket for {spn} (401: Key version is not available)" in line, line
    assert "keytab is out of date" in line and f"setspn -Q {spn}" in line


def test_missing_gssapi_library_names_the_debian_package(monkeypatch):
    from pi_platform import gss
    from pi_platform.client.negotiate import KerberosError, Negotiator

    monkeypatch.setattr(gss, "LIBRARY", "libgssapi_krb5.so.missing")  # what ctypes meets where the package is absent
    gss._lib.cache_clear()
    try:
        with pytest.raises(KerberosError, match=r"install the Debian package libgssapi-krb5-2") as excinfo:
            Negotiator("localhost").start()
        assert "\n" not in str(excinfo.value)
    finally:
        monkeypatch.undo()
        gss._lib.cache_clear()
