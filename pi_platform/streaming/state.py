"""Files the collector shares with its operators and with Dagster, all written atomically.

    <state_dir>/status.json        what the collector is doing (heartbeat, connections, throughput, commits)
    <state_dir>/subscription.json  the desired subscription: the control channel a sensor writes
    <state_dir>/cursors.json       per stream, where its data starts if it has never been committed
    <state_dir>/tags.json          per stream, PI's snapshot, point attributes and newest committed value time
    <state_dir>/collector.lock     held while a collector runs on this directory
    <state_dir>/wal/               the write-ahead log
    <state_dir>/pending_groups.json late groups waiting for their verification read (pending.py)

Files rather than a socket: they work the same for a local subprocess, a systemd unit or a Kubernetes pod
with a shared volume, survive restarts of either side, and are trivially inspectable.
"""

import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from pi_platform.streaming.errors import CollectorRunning

STATUS_FILE = "status.json"
SUBSCRIPTION_FILE = "subscription.json"
CURSORS_FILE = "cursors.json"
TAGS_FILE = "tags.json"
LOCK_FILE = "collector.lock"
WAL_DIR = "wal"


def write_json(path: Path, data: Any) -> None:
    """Write via a temp file + rename so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError:
        return None


def write_subscription(state_dir: str | os.PathLike[str], web_ids: list[str], *, start: str = "*", source: str = "") -> bool:
    """Publish the desired subscription; returns False (and leaves the file alone) when it is unchanged."""
    path = Path(state_dir) / SUBSCRIPTION_FILE
    desired = {"web_ids": sorted(set(web_ids)), "start": start}
    current = read_json(path)
    if isinstance(current, dict) and {k: current.get(k) for k in desired} == desired:
        return False
    write_json(path, {**desired, "source": source})
    return True


def read_subscription(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    data = read_json(Path(state_dir) / SUBSCRIPTION_FILE)
    if not isinstance(data, dict) or not isinstance(data.get("web_ids"), list):
        return None
    return data


def read_status(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    data = read_json(Path(state_dir) / STATUS_FILE)
    return data if isinstance(data, dict) else None


def try_lock(path: Path) -> int | None:
    """A descriptor holding an exclusive advisory lock on `path` (created if missing), or None when another
    process holds it. The kernel drops the lock when its holder dies, however it dies (kill -9)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class StateLock:
    """An exclusive advisory lock on the state directory; the kernel drops it when the process dies (kill -9)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = try_lock(self.path)
        if fd is None:
            raise CollectorRunning(
                f"another collector is running on {self.path.parent}; stop it or use a different --state-dir"
            )
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def process_alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's exit status may never be reaped inside a container)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
