"""CPU seconds and memory of a process, read from /proc and getrusage (psutil is not a dependency).

Linux only, like the benchmark's target machines; elsewhere the figures are reported as None rather than
guessed.
"""

import os
import resource
import threading
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuTimes:
    user_s: float
    system_s: float

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s

    def __sub__(self, other: "CpuTimes") -> "CpuTimes":
        return CpuTimes(self.user_s - other.user_s, self.system_s - other.system_s)

    def __add__(self, other: "CpuTimes") -> "CpuTimes":
        return CpuTimes(self.user_s + other.user_s, self.system_s + other.system_s)


def self_cpu() -> CpuTimes:
    """All threads of this process (delta-rs' Rust threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuTimes(usage.ru_utime, usage.ru_stime)


def children_cpu() -> CpuTimes:
    """Children of this process that have exited and been waited for (the extraction's reader processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuTimes(usage.ru_utime, usage.ru_stime)


class RssSampler:
    """Samples, in a thread while in use, this process' resident memory and the high-water mark of every live child.

    This process' samples say WHEN memory peaks, not just how high: the 100k-tag run once peaked at 1.77 GB while
    a few coarse samples read 0.70-0.75 GB, and only a timeline tells a transient burst from a level.

    ru_maxrss of RUSAGE_CHILDREN is the largest single child, but the reader processes run side by side, so
    what the machine must hold is the sum of their peaks; that sum is reported (an upper bound: the peaks
    need not coincide). A child is sampled until it exits, so a peak reached in the last interval can be
    missed; sampling is frequent (0.1 s) because memory grows over many pages, not in one.
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.peaks: dict[int, int] = {}
        self.own: list[tuple[float, int]] = []  # (seconds since start, this process' VmRSS bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="children-rss", daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def total_bytes(self) -> int:
        return sum(self.peaks.values())

    def timeline(self) -> dict[str, float | int | None]:
        """This process' samples in brief: the highest and the median, and when the highest came (0 = start, 1 = end)."""
        if not self.own:
            return {"samples": 0, "max_bytes": None, "median_bytes": None, "max_at_fraction": None}
        values = sorted(rss for _, rss in self.own)
        at, highest = max(self.own, key=lambda sample: sample[1])
        return {"samples": len(self.own), "max_bytes": highest, "median_bytes": values[len(values) // 2],
                "max_at_fraction": round(at / self.own[-1][0], 3) if self.own[-1][0] else 0.0}

    def _sample(self) -> None:
        started = time.perf_counter()
        while not self._stop.wait(self.interval_s):
            rss = self_rss_bytes()
            if rss:
                self.own.append((time.perf_counter() - started, rss))
            for pid in _children(os.getpid()):
                peak = pid_peak_rss_bytes(pid)
                if peak:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found.extend(int(child) for child in listed.read().split())
    except OSError:
        pass
    return found


def self_peak_rss_bytes() -> int:
    """High-water mark of this process' own resident memory: VmHWM, the peak of its address space.

    Not ru_maxrss: Linux carries the parent's high-water mark into a child across fork/vfork + exec, so an
    extraction started by a benchmark that had itself peaked at 1.3 GB (scanning the last run's table) reported
    1.3-1.5 GB while it never held more than ~0.85. ru_maxrss (KiB on Linux) only where /proc is missing.
    """
    return _status_kib(os.getpid(), "VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def self_rss_bytes() -> int | None:
    return _status_kib(os.getpid(), "VmRSS")


def pid_cpu(pid: int) -> CpuTimes | None:
    """utime/stime of another process (fields 14/15 of /proc/<pid>/stat, after the parenthesised name)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return CpuTimes(int(fields[11]) / _TICKS, int(fields[12]) / _TICKS)


def pid_peak_rss_bytes(pid: int) -> int | None:
    return _status_kib(pid, "VmHWM")


def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
