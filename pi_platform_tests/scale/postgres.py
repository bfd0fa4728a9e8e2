"""A real, throwaway PostgreSQL server: Debian's `postgresql` binaries, `initdb` + `pg_ctl` into a temp dir on a
free loopback port, trust authentication, stopped and deleted afterwards.

initdb refuses to run as root (a database superuser must not be the OS superuser), and tests often run as root in
containers and CI; then the server runs as the unprivileged `nobody` user (`setpriv`, util-linux), in a directory
under /tmp that it owns, because pytest's own temp dirs are private to root. As any other user it runs as that
user. Durability is switched off (fsync, synchronous_commit): the data lives for one test module.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pi_platform_tests.conftest import find_executable
from pi_platform_tests.launcher.helpers import free_port

PG_BIN_DIRS = ("/usr/lib/postgresql/*/bin",)  # Debian: versioned and off PATH
_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def postgres_binaries() -> tuple[str, str]:
    """(initdb, pg_ctl); skips the test naming the `postgresql` package where it is not installed."""
    initdb = find_executable("initdb", package="postgresql", search=PG_BIN_DIRS)
    return initdb, str(Path(initdb).with_name("pg_ctl"))


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the server's URL (`postgresql://postgres@127.0.0.1:PORT/postgres`)."""
    initdb, pg_ctl = postgres_binaries()
    root = Path(tempfile.mkdtemp(prefix="pi-platform-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = [shutil.which("setpriv") or "setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                   "--clear-groups", "--"]
    data, port = root / "data", free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], cwd=root, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"{' '.join(args[:2])} failed: {done.stdout[-2000:]} {done.stderr[-2000:]}"

    try:
        run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        run(pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "120", "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 {_FAST}", "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
