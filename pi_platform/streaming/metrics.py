"""Rolling throughput and latency figures for the status file and the benchmark.

Latency is end to end as a user feels it: from the value's own PI timestamp to the Delta commit that
made it queryable. Only fresh channel values count (a backfilled hour-old value is not "latency").
"""

import time
from collections import deque

import numpy as np


class RollingMetrics:
    """Commits of the last `window_s` seconds; memory bounded by a sample cap per commit."""

    def __init__(self, window_s: float = 30.0, samples_per_commit: int = 2000) -> None:
        self.window_s = window_s
        self.samples_per_commit = samples_per_commit
        self._commits: deque[tuple[float, int, np.ndarray]] = deque()
        self.total_rows = 0
        self.all_latencies: list[np.ndarray] | None = None  # the benchmark keeps every sample

    def record(self, committed_at: float, rows: int, latencies_s: np.ndarray) -> None:
        self.total_rows += rows
        if self.all_latencies is not None:
            self.all_latencies.append(latencies_s)
        if len(latencies_s) > self.samples_per_commit:
            latencies_s = np.random.default_rng(0).choice(latencies_s, self.samples_per_commit, replace=False)
        self._commits.append((committed_at, rows, latencies_s))
        self._trim(committed_at)

    def _trim(self, now: float) -> None:
        while self._commits and self._commits[0][0] < now - self.window_s:
            self._commits.popleft()

    def snapshot(self, now: float | None = None) -> dict[str, float | None]:
        now = time.time() if now is None else now
        self._trim(now)
        rows = sum(c[1] for c in self._commits)
        samples = [c[2] for c in self._commits if len(c[2])]
        latencies = np.concatenate(samples) if samples else np.zeros(0)
        return {
            "values_per_s": rows / self.window_s,
            "latency_p50_s": float(np.percentile(latencies, 50)) if len(latencies) else None,
            "latency_p99_s": float(np.percentile(latencies, 99)) if len(latencies) else None,
        }
