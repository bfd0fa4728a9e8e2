"""The processes `up` runs, how a signal reaches it, and how they stop: in order, and gracefully first.

Each child runs in its own session (a terminal's Ctrl-C reaches only `up`, which then stops them in order) with
its output in a log file, so the terminal carries only what `up` itself says. Children get default signal
dispositions: a shell that starts `up` in the background leaves SIGINT/SIGTERM ignored, and that would make
`dagster dev` (which maps SIGTERM to SIGINT) deaf to a graceful stop.
"""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pi_platform.streaming.state import LOCK_FILE, process_alive

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: unwind to the shutdown, which runs once whatever else arrives."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn the first stop signal into `Stopped`; later ones are ignored so they cannot cut the shutdown short."""

    def handler(signum: int, _frame: object) -> None:
        hold_signals()
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def hold_signals() -> None:
    """From here on (the shutdown) stop signals are ignored: a second Ctrl-C must not leave children behind."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _default_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def spawn(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_default_signals)


def stop(child: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM to the child, then SIGKILL to its whole process group (run workers, code servers) once it exited
    or the grace period is over."""
    if child.poll() is None:
        try:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()


def stop_collector(state_dir: Path, grace_s: float = 30) -> bool:
    """The sensor starts the collector in its own session so it outlives sensor ticks; stop it with us. SIGTERM
    lets it flush, commit and release its lock. Returns whether one was running."""
    try:
        pid = int((state_dir / LOCK_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0 or not process_alive(pid):
        return False
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not process_alive(pid):
                return True
            time.sleep(0.2)
    return True
