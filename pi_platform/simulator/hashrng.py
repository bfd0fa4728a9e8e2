"""Stateless, vectorised pseudo-random numbers: uniform = hash(seed, keys..., counter).

Seeding a numpy Generator per (tag, hour) costs tens of microseconds, which at 100,000 tags x 24 hours is
longer than the whole extraction budget. A counter-based hash (splitmix64 finaliser) has no set-up cost,
vectorises over counters, and makes any value addressable without generating its predecessors.
"""

import math

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_INV53 = 1.0 / float(1 << 53)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic is intended)."""
    return _mix_in_place(np.array(x, dtype=np.uint64))


def _mix_in_place(x: np.ndarray) -> np.ndarray:
    """`mix` overwriting `x`: one temporary per shift instead of one per operation (the generator's hottest
    loop, ~10 hashes per value)."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def key(*parts: int) -> np.uint64:
    """Combine integer parts (seed, tag, bucket, purpose...) into one 64-bit key."""
    acc = np.zeros(1, dtype=np.uint64)
    for part in parts:
        acc = mix(acc ^ (np.uint64(part & 0xFFFFFFFFFFFFFFFF) + _GOLDEN))
    return acc[0]


def hashes(base: "np.uint64 | np.ndarray", counters: np.ndarray) -> np.ndarray:
    """64-bit hashes of (base, counter) for every counter; `base` may be a scalar key or an array of keys."""
    x = counters.astype(np.uint64)
    x *= _GOLDEN
    x += _M1
    x ^= np.asarray(base, dtype=np.uint64)
    return _mix_in_place(x)


def uniform(base: "np.uint64 | np.ndarray", counters: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from (base, counter)."""
    return to_unit(hashes(base, counters))


def hashes_many(bases: "list[np.uint64]", counters: np.ndarray) -> np.ndarray:
    """`hashes(base, counters)` for several keys at once, a row per key: the counter's part is computed once
    and every step runs once over the whole (keys, counters) matrix."""
    x = counters.astype(np.uint64)
    x *= _GOLDEN
    x += _M1
    return _mix_in_place(np.asarray(bases, dtype=np.uint64)[:, None] ^ x[None, :])


def to_unit(h: np.ndarray) -> np.ndarray:
    """Hashes as floats in [0, 1): their top 53 bits (overwrites `h`)."""
    h >>= np.uint64(11)
    out = h.astype(np.float64)
    out *= _INV53
    return out


def below(h: np.ndarray, p: float) -> np.ndarray:
    """`to_unit(h) < p` without the floats: to_unit is exact (k / 2**53 for k = h >> 11), so the test is
    k < ceil(p * 2**53), i.e. h < ceil(p * 2**53) << 11."""
    bound = math.ceil(p * 2.0**53)
    if bound >= 1 << 53:
        return np.ones(h.shape, dtype=bool)
    return h < np.uint64(max(bound, 0) << 11)


def uniform1(*parts: int) -> float:
    """A single float in [0, 1) for a tuple of integers (per-tag parameters, per-day choices)."""
    return float(uniform(key(*parts), np.zeros(1, dtype=np.uint64))[0])
