"""Flat (setpoint-like) tags: piecewise-constant levels whose events follow PI exception and compression.

A flat tag holds a level for minutes to many hours (mean hold per tag, log-uniform 5 min .. 12 h) and steps by
at least one quantum. Everything is closed form, so any range is computable without history:

- level changes: per hour bucket a hashed number of changes at hashed whole seconds; every PERIOD (2 days) the
  level is re-drawn at the period start, so the level at any time is known from one period's changes;
  a drawn level equal to the previous one is no change and dropped.
- exception events (what the snapshot shows) = changes U the excmax grid (multiples of excmax since the epoch);
- archive events (recorded, channels, ground truth) = changes U the compmax grid.

So a healthy flat tag's snapshot moves at least every excmax while its archive may be silent up to compmax.
"""

import threading
from collections import OrderedDict

import numpy as np

from pi_platform.simulator import hashrng
from pi_platform.simulator.catalog import DIGITAL, DIGITAL_SETS, INTEGER, Point
from pi_platform.simulator.compression import Compression, flat_quantum
from pi_platform.simulator.values import HOUR_US, K_DIGITAL, K_NUMBER, NEVER, Block

PERIOD_US = 48 * HOUR_US
LEVELS = 31  # numeric levels between 20% and 80% of span
MIN_HOLD_S, MAX_HOLD_S = 300.0, 43_200.0
_SALT_HOLD, _SALT_COUNT, _SALT_ROUND, _SALT_TIME, _SALT_LEVEL = 7101, 7102, 7103, 7104, 7105


class FlatSeries:
    """Level changes of flat tags, cached per (tag, period), and the event series derived from them."""

    def __init__(self, seed: int, cache_periods: int = 20_000) -> None:
        self.seed = seed
        self._cache: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = cache_periods
        self._lock = threading.Lock()
        self._params: dict[int, tuple[np.uint64, float]] = {}  # per tag: hash key, mean hold (s)

    def mean_hold_s(self, point: Point) -> float:
        return self._tag(point)[1]

    def _tag(self, point: Point) -> tuple[np.uint64, float]:
        params = self._params.get(point.index)
        if params is None:
            u = hashrng.uniform1(self.seed, point.index, _SALT_HOLD)
            hold = float(MIN_HOLD_S * (MAX_HOLD_S / MIN_HOLD_S) ** u)
            params = self._params[point.index] = (hashrng.key(self.seed, point.index), hold)
        return params

    def events(self, point: Point, start_us: int, end_us: int, grid_s: int) -> Block:
        """Changes and grid instants (every grid_s) in [start, end] (start <= end), each with the level then."""
        change_ts, levels = self._changes_between(point, start_us, end_us)
        step = grid_s * 1_000_000
        grid = np.arange(-(-start_us // step) * step, end_us + 1, step, dtype=np.int64)
        inside = change_ts[(change_ts >= start_us) & (change_ts <= end_us)]
        ts = np.union1d(inside, grid)
        return _block(point, ts, levels[np.searchsorted(change_ts, ts, side="right") - 1])

    def level_at(self, point: Point, t_us: int) -> Block:
        """A one-event block holding the level at t (an interface re-sending its value after a restart)."""
        change_ts, levels = self._changes_between(point, t_us, t_us)
        ts = np.array([t_us], dtype=np.int64)
        return _block(point, ts, levels[np.searchsorted(change_ts, ts, side="right") - 1])

    def archive(self, point: Point, compression: Compression, start_us: int, end_us: int) -> Block:
        return self.events(point, start_us, end_us, compression.compmax_s)

    def exceptions(self, point: Point, compression: Compression, start_us: int, end_us: int) -> Block:
        return self.events(point, start_us, end_us, compression.excmax_s)

    # ---- generation ------------------------------------------------------------------------------------
    def _changes_between(self, point: Point, start_us: int, end_us: int) -> tuple[np.ndarray, np.ndarray]:
        """Kept changes of every period touching [start, end] (the first starts at or before start)."""
        parts = [self._period(point, p) for p in range(start_us // PERIOD_US, end_us // PERIOD_US + 1)]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _period(self, point: Point, period: int) -> tuple[np.ndarray, np.ndarray]:
        key = (point.index, period)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        found = self._generate(point, period)
        with self._lock:
            self._cache[key] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return found

    def _generate(self, point: Point, period: int) -> tuple[np.ndarray, np.ndarray]:
        tag_key, hold_s = self._tag(point)
        per_bucket = 3600.0 / hold_s
        buckets = period * (PERIOD_US // HOUR_US) + np.arange(PERIOD_US // HOUR_US, dtype=np.int64)
        u_count = hashrng.uniform(tag_key ^ np.uint64(_SALT_COUNT), buckets)
        u_round = hashrng.uniform(tag_key ^ np.uint64(_SALT_ROUND), buckets)
        counts = np.floor(per_bucket * (0.75 + 0.5 * u_count) + u_round).astype(np.int64)
        bucket_of = np.repeat(buckets, counts)
        j = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        instant = bucket_of * (1 << 20) + j
        seconds = np.floor(hashrng.uniform(tag_key ^ np.uint64(_SALT_TIME), instant) * 3600).astype(np.int64)
        # The re-draw at the period start comes first, so a change in the same second overrides it.
        ts = np.concatenate([[period * PERIOD_US], bucket_of * HOUR_US + seconds * 1_000_000])
        counters = np.concatenate([[-1 - period], instant])
        order = np.argsort(ts, kind="stable")
        ts, counters = ts[order], counters[order]
        last_in_second = np.append(ts[1:] != ts[:-1], True)
        ts, counters = ts[last_in_second], counters[last_in_second]
        levels = self._levels(point, hashrng.uniform(tag_key ^ np.uint64(_SALT_LEVEL), counters))
        keep = np.ones(len(ts), dtype=bool)
        keep[1:] = levels[1:] != levels[:-1]
        return ts[keep], levels[keep]

    def _levels(self, point: Point, u: np.ndarray) -> np.ndarray:
        if point.kind == DIGITAL:  # states as often as on continuous tags (a mode is mostly Running)
            weights = np.cumsum(DIGITAL_SETS[point.digital_set].weights)
            return np.minimum(np.searchsorted(weights, u * weights[-1], side="right"), len(weights) - 1).astype(float)
        k = np.minimum(np.floor(u * LEVELS), LEVELS - 1)
        quantum = flat_quantum(point)
        low = point.zero + 0.2 * point.span
        decimals = 0 if point.kind == INTEGER else (3 if point.point_type == "Float32" else 5)
        return np.round(low + quantum * k, decimals)


def _block(point: Point, ts: np.ndarray, levels: np.ndarray) -> Block:
    n = len(ts)
    digital = point.kind == DIGITAL
    code = levels.astype(np.int32) if digital else np.full(n, -1, dtype=np.int32)
    kind = np.full(n, K_DIGITAL if digital else K_NUMBER, dtype=np.uint8)
    num = levels.astype(np.float64)
    no = np.zeros(n, dtype=bool)
    sidx = np.full(n, -1, dtype=np.int32)
    return Block(
        ts, np.zeros(n, np.int32), kind, num, code, sidx, no, no, no.copy(), np.full(n, NEVER), num, code, sidx
    )
