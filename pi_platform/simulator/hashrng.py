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


def _mix_in_place(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array, overwriting it (wrapping arithmetic is intended): one temporary
    per shift instead of one per operation (the generator's hottest loop, ~10 hashes per value)."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


_MASK = (1 << 64) - 1


def _mix_int(x: int) -> int:
    """`_mix_in_place` of one 64-bit value in Python integers: numpy's per-call set-up costs more than these
    few steps (keys and per-tag draws are derived once per tag, thousands of times in a wide read)."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _key_int(parts: tuple[int, ...]) -> int:
    acc = 0
    for part in parts:
        acc = _mix_int(acc ^ (((part & _MASK) + 0x9E3779B97F4A7C15) & _MASK))
    return acc


def key(*parts: int) -> np.uint64:
    """Combine integer parts (seed, tag, bucket, purpose...) into one 64-bit key."""
    return np.uint64(_key_int(parts))


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


def hashes_many(bases: "list[np.uint64] | np.ndarray", counters: np.ndarray) -> np.ndarray:
    """`hashes(base, counters)` for several keys at once, a row per key: the counter's part is computed once
    and every step runs once over the whole (keys, counters) matrix. A 2-D `bases` gives each counter its
    own key in every row (values of many tags in one pass)."""
    x = counters.astype(np.uint64)
    x *= _GOLDEN
    x += _M1
    keys = np.asarray(bases, dtype=np.uint64)
    return _mix_in_place((keys[:, None] if keys.ndim == 1 else keys) ^ x[None, :])


def to_unit(h: np.ndarray) -> np.ndarray:
    """Hashes as floats in [0, 1): their top 53 bits (overwrites `h`)."""
    h >>= np.uint64(11)
    out = h.astype(np.float64)
    out *= _INV53
    return out


def below(h: np.ndarray, p: "float | np.ndarray") -> np.ndarray:
    """`to_unit(h) < p` without the floats: to_unit is exact (k / 2**53 for k = h >> 11), so the test is
    k < ceil(p * 2**53), i.e. h < ceil(p * 2**53) << 11. `p` may be an array (a probability per hash)."""
    if np.ndim(p) == 0:
        bound = math.ceil(p * 2.0**53)
        if bound >= 1 << 53:
            return np.ones(h.shape, dtype=bool)
        return h < np.uint64(max(bound, 0) << 11)
    bounds = np.clip(np.ceil(np.asarray(p) * 2.0**53), 0, 2.0**53)  # exact: integers below 2**54
    return (h < (bounds.astype(np.uint64) << np.uint64(11))) | (bounds >= 2.0**53)


def uniform1(*parts: int) -> float:
    """A single float in [0, 1) for a tuple of integers (per-tag parameters, per-day choices): `uniform` of
    counter 0 (whose hash input is the key ^ _M1)."""
    return (_mix_int(_key_int(parts) ^ 0xBF58476D1CE4E5B9) >> 11) * _INV53
