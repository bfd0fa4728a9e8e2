"""The simulator in its own process, so its CPU is measured apart from the extractor's.

`python -m pi_platform.bench.simproc --n-tags N ...` starts a SimulatorServer on a free loopback port,
prints one JSON line `{"base_url": ..., "pid": ...}` and serves until its stdin closes: if the benchmark
dies, the pipe closes and the simulator exits with it instead of lingering.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime

from pi_platform.pitime import format_time, parse_time


@dataclass(frozen=True)
class SimulatorSpec:
    n_tags: int
    seed: int = 42
    values_per_minute: float = 1.0
    edge_tags: bool = False
    now: datetime | None = None  # frozen clock; None = real time
    channel_poll_interval_s: float | None = None  # None: the simulator's default
    correction_rate: float | None = None  # None: the simulator's default

    def argv(self) -> list[str]:
        args = ["--n-tags", str(self.n_tags), "--seed", str(self.seed), "--values-per-minute", str(self.values_per_minute)]
        if self.edge_tags:
            args.append("--edge-tags")
        if self.now is not None:
            args += ["--now", format_time(self.now)]
        if self.channel_poll_interval_s is not None:
            args += ["--poll-interval", str(self.channel_poll_interval_s)]
        if self.correction_rate is not None:
            args += ["--correction-rate", str(self.correction_rate)]
        return args


class SimulatorProcess:
    """Context manager: a simulator child process with `.base_url` and `.pid`; killed (whole session) on exit."""

    def __init__(self, spec: SimulatorSpec, *, startup_timeout_s: float = 300.0) -> None:
        self.spec = spec
        self.startup_timeout_s = startup_timeout_s
        self.base_url = ""
        self.pid = 0
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "SimulatorProcess":
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pi_platform.bench.simproc", *self.spec.argv()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            line = self._proc.stdout.readline() if self._proc.stdout else ""
            if not line:
                raise RuntimeError(f"simulator process exited with status {self._proc.wait(timeout=10)} before serving")
            ready = json.loads(line)
        except BaseException:
            self.stop()
            raise
        self.base_url, self.pid = ready["base_url"], ready["pid"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin:
            proc.stdin.close()  # the polite stop: the child's stdin read returns
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # background processes here may ignore SIGTERM
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    from pi_platform.simulator.config import SimulatorConfig
    from pi_platform.simulator.server import SimulatorServer

    parser = argparse.ArgumentParser(prog="python -m pi_platform.bench.simproc")
    parser.add_argument("--n-tags", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--values-per-minute", type=float, default=1.0)
    parser.add_argument("--edge-tags", action="store_true")
    parser.add_argument("--now", help="freeze the simulator clock at this time (ISO)")
    parser.add_argument("--poll-interval", type=float, help="seconds between channel polls")
    parser.add_argument("--correction-rate", type=float, help="share of values corrected later")
    args = parser.parse_args(argv)
    config = SimulatorConfig(
        n_tags=args.n_tags, seed=args.seed, values_per_minute=args.values_per_minute, edge_tags=args.edge_tags,
        now=parse_time(args.now) if args.now else None, event_frames=False,
        **({} if args.poll_interval is None else {"channel_poll_interval_s": args.poll_interval}),
        **({} if args.correction_rate is None else {"correction_rate": args.correction_rate}),
    )
    with SimulatorServer(config) as server:
        len(server.plant.points)  # build the catalog now, not inside the first timed request
        print(json.dumps({"base_url": server.base_url, "pid": os.getpid()}), flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
