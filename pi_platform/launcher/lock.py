"""One `pi-platform up` per Dagster home and per stream state directory.

A second instance on the same Dagster home starts a second daemon (Dagster allows one per instance), and on the
same state directory its shutdown stops the first one's collector. So `up` takes an exclusive `flock` on a file
in each before it touches anything, and a second `up` stops there with the holder's pid and UI address. The
kernel drops the lock when its holder dies, however it dies, so a crash leaves no lock to clear by hand; what it
can leave are its children (they run in their own sessions), and their process groups are recorded in the lock
file so the next `up` stops them before starting its own.
"""

import fcntl
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pi_platform.errors import PlatformError
from pi_platform.streaming.state import try_lock

LOCK_NAME = "pi-platform-up.lock"


@dataclass
class Holder:
    """What the lock file says about the instance holding it."""

    pid: int
    ui: str = ""
    groups: list[int] = field(default_factory=list)


class AlreadyRunning(PlatformError):
    """Another `pi-platform up` holds the Dagster home or the state directory."""


class InstanceLock:
    """Exclusive locks on `<dir>/pi-platform-up.lock` for each directory, held until `release()`."""

    def __init__(self, directories: list[Path]) -> None:
        self.paths = [directory / LOCK_NAME for directory in dict.fromkeys(directories)]
        self._fds: list[int] = []
        self.holder = Holder(pid=os.getpid())

    def acquire(self) -> list[Holder]:
        """Take every lock or none; returns the records of crashed instances whose locks were free."""
        crashed: list[Holder] = []
        for path in self.paths:
            fd = try_lock(path)
            if fd is None:
                holder = _read(path) or Holder(pid=0)
                self.release()
                raise AlreadyRunning(
                    f"already running (pid {holder.pid}, UI at {holder.ui or 'not up yet'}) on {path.parent}; "
                    "stop it first (Ctrl-C or `kill` on that pid), or set another DAGSTER_HOME / PI_STREAM_STATE_DIR"
                )
            self._fds.append(fd)
            previous = _read(path)
            if previous is not None and previous.groups and previous not in crashed:
                crashed.append(previous)
        self.record()
        return crashed

    def record(self, *, ui: str | None = None, group: int | None = None) -> None:
        """Publish this instance's UI address and the process groups it started (for a second `up` and for
        the instance after a crash)."""
        if ui is not None:
            self.holder.ui = ui
        if group is not None:
            self.holder.groups.append(group)
        data = json.dumps(asdict(self.holder)).encode()
        for fd in self._fds:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)

    def release(self) -> None:
        for fd in self._fds:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._fds = []


def stop_leftovers(holder: Holder) -> list[int]:
    """Kill the process groups a crashed instance left running; returns those that were alive."""
    alive = [group for group in holder.groups if _group_alive(group)]
    for group in alive:
        _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_group_alive(g) for g in alive):
        time.sleep(0.2)
    for group in alive:
        _signal_group(group, signal.SIGKILL)
    return alive


def _read(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text() or "null")
        return Holder(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass
