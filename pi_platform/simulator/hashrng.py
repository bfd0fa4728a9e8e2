"""Stateless, vectorised pseudo-random numbers: uniform = hash(seed, keys..., counter).

Seeding a numpy Generator per (tag, hour) costs tens of microseconds, which at 100,000 tags x 24 hours is
longer than the whole extraction budget. A counter-based hash (splitmix64 finaliser) has no set-up cost,
vectorises over counters, and makes any value addressable without generating its predecessors.
"""

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_INV53 = 1.0 / float(1 << 53)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic is intended)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def key(*parts: int) -> np.uint64:
    """Combine integer parts (seed, tag, bucket, purpose...) into one 64-bit key."""
    acc = np.zeros(1, dtype=np.uint64)
    for part in parts:
        acc = mix(acc ^ (np.uint64(part & 0xFFFFFFFFFFFFFFFF) + _GOLDEN))
    return acc[0]


def hashes(base: "np.uint64 | np.ndarray", counters: np.ndarray) -> np.ndarray:
    """64-bit hashes of (base, counter) for every counter; `base` may be a scalar key or an array of keys."""
    with np.errstate(over="ignore"):
        return mix(np.asarray(base, dtype=np.uint64) ^ (counters.astype(np.uint64) * _GOLDEN + _M1))


def uniform(base: "np.uint64 | np.ndarray", counters: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from (base, counter)."""
    return (hashes(base, counters) >> np.uint64(11)).astype(np.float64) * _INV53


def uniform1(*parts: int) -> float:
    """A single float in [0, 1) for a tuple of integers (per-tag parameters, per-day choices)."""
    return float(uniform(key(*parts), np.zeros(1, dtype=np.uint64))[0])
