"""Running `pi-platform up` as a user does: a real process, its output in a file, signals sent by pid."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from pi_platform.launcher.lock import LOCK_NAME

# Every variable that would point `up` somewhere other than where a newcomer's run goes.
PLACE_VARIABLES = ("DAGSTER_HOME", "PI_DELTA_ROOT", "PI_STREAM_STATE_DIR", "PI_PLATFORM_HOME", "PI_WEBAPI_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def isolated_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Dagster home, lake and stream state under `tmp`, the embedded simulator."""
    env = {k: v for k, v in os.environ.items() if k not in PLACE_VARIABLES}
    env.update(DAGSTER_HOME=str(tmp / "home"), PI_DELTA_ROOT=str(tmp / "lake"), PI_STREAM_STATE_DIR=str(tmp / "stream"))
    env.update(PI_VIEWER_PORT=str(free_port()))  # `up` serves the viewer too: never on a port another test holds
    env.update(extra)
    return env


class Up:
    """`pi-platform up ARGS` in the background, stdout and stderr in one file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        self.ui_port, self.sim_port, self.viewer_port = free_port(), free_port(), free_port()
        self.log = log
        self.env = env
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pi_platform.cli", "up", "--port", str(self.ui_port),
                 "--simulator-port", str(self.sim_port), "--viewer-port", str(self.viewer_port), *args],
                env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output:
            assert self.process.poll() is None, f"up exited ({self.process.returncode}) before {text!r}:\n{self.output[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout_s} s:\n{self.output[-3000:]}"
            time.sleep(0.3)

    def groups(self, home: Path) -> list[int]:
        """The process groups `up` recorded in its lock file (simulator, Dagster)."""
        return json.loads((home / LOCK_NAME).read_text())["groups"]

    def finish(self, timeout_s: float = 120) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"up did not stop within {timeout_s} s:\n{self.output[-3000:]}") from None


def group_alive(group: int) -> bool:
    """Any live (non-zombie) process in the group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False
