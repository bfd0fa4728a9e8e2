"""A throwaway Kerberos realm on loopback: MIT `krb5kdc` with its own database, a user and an HTTP service.

Everything lives in one directory (kdc.conf, krb5.conf, database, keytabs, credential caches) and the
environment the library reads (KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5CCNAME, KRB5_KTNAME) points there, so the
machine's own Kerberos setup is neither used nor touched. The SPN host is `localhost` and DNS plays no part
(rdns=false, dns_canonicalize_hostname=false), as in a domain where the SPN is registered for the name
clients use.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

REALM = "PISIM.TEST"
USER = "piuser"
SERVICE_HOST = "localhost"
# Each tool and the Debian package that ships it.
PACKAGES = {"krb5kdc": "krb5-kdc", "kdb5_util": "krb5-kdc", "kadmin.local": "krb5-admin-server", "kinit": "krb5-user",
            "klist": "krb5-user"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Realm:
    """Create with `Realm(directory, executables).start()`; `stop()` ends the KDC."""

    def __init__(self, directory: Path, executables: dict[str, str], clockskew_s: int = 300) -> None:
        self.dir = directory
        self.exe = executables
        self.port = _free_port()
        self.user = f"{USER}@{REALM}"
        self.spn = f"HTTP/{SERVICE_HOST}@{REALM}"
        self.service_keytab = directory / "http.keytab"
        self.user_keytab = directory / "user.keytab"
        self.krb5_conf = directory / "krb5.conf"
        self.kdc_conf = directory / "kdc.conf"
        self.clockskew_s = clockskew_s
        self._kdc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """The variables MIT krb5 reads: this realm's files, a default cache nobody else uses, and a default client
        keytab that does not exist (MIT would otherwise get tickets from one silently, hiding "no ticket")."""
        return {
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(self.kdc_conf),
            "KRB5CCNAME": f"FILE:{self.dir / 'default.ccache'}",
            "KRB5_KTNAME": f"FILE:{self.service_keytab}",
            "KRB5_CLIENT_KTNAME": f"FILE:{self.dir / 'no-client.keytab'}",
        }

    def run(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([self.exe[args[0]], *args[1:]], env={**os.environ, **self.env, **(env or {})},
                              capture_output=True, text=True, timeout=60, check=check)

    def start(self) -> "Realm":
        self._write_configs()
        self.run("kdb5_util", "create", "-s", "-r", REALM, "-P", "master-password-for-tests")
        self.run("kadmin.local", "-q", f"addprinc -randkey {self.user}")
        self.run("kadmin.local", "-q", f"addprinc -randkey {self.spn}")
        self.run("kadmin.local", "-q", f"ktadd -k {self.service_keytab} {self.spn}")
        self.run("kadmin.local", "-q", f"ktadd -k {self.user_keytab} {self.user}")
        self._kdc = subprocess.Popen([self.exe["krb5kdc"], "-n", "-r", REALM], env={**os.environ, **self.env},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:  # the KDC is ready when its TCP port accepts
            if self._kdc.poll() is not None:
                raise RuntimeError(f"krb5kdc exited: {self._kdc.stderr.read() if self._kdc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("krb5kdc did not open its port within 60 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._kdc is not None and self._kdc.poll() is None:
            self._kdc.terminate()
            try:
                self._kdc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._kdc.kill()
                self._kdc.wait()

    def kinit(self, ccache: Path, *options: str) -> None:
        """Tickets for the user from its keytab into `ccache` (what `kinit` with a password does, minus the prompt)."""
        self.run("kinit", *options, "-k", "-t", str(self.user_keytab), "-c", f"FILE:{ccache}", self.user)

    def _write_configs(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.kdc_conf.write_text(f"""[kdcdefaults]
 kdc_ports = {self.port}
 kdc_tcp_ports = {self.port}

[realms]
 {REALM} = {{
  database_name = {self.dir / 'principal'}
  key_stash_file = {self.dir / 'stash'}
  acl_file = {self.dir / 'kadm5.acl'}
  max_life = 10h
  max_renewable_life = 1d
 }}

[logging]
 kdc = FILE:{self.dir / 'kdc.log'}
""")
        self.krb5_conf.write_text(f"""[libdefaults]
 default_realm = {REALM}
 dns_lookup_kdc = false
 dns_lookup_realm = false
 dns_canonicalize_hostname = false
 rdns = false
 forwardable = true
 udp_preference_limit = 1
 clockskew = {self.clockskew_s}

[realms]
 {REALM} = {{
  kdc = 127.0.0.1:{self.port}
 }}

[domain_realm]
 {SERVICE_HOST} = {REALM}
""")


def executables() -> dict[str, str | None]:
    """Where each tool lives (sbin is often not on a user's PATH), None when its package is missing."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        found[name] = shutil.which(name) or next(
            (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None)
    return found
