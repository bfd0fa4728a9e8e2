"""CPU seconds and memory of a process, read from /proc and getrusage (psutil is not a dependency).

Linux only, like the benchmark's target machines; elsewhere the figures are reported as None rather than
guessed.
"""

import os
import resource
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


def self_cpu() -> CpuTimes:
    """All threads of this process (delta-rs' Rust threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuTimes(usage.ru_utime, usage.ru_stime)


def self_peak_rss_bytes() -> int:
    """High-water mark of this process' resident memory (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


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
