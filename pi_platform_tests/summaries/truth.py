"""Summaries and interpolated values computed independently from the plant's raw values (ground truth).

Only `plant.recorded` (the raw archive the HTTP layer serves) is shared with the simulator; the arithmetic
is a different algorithm from `simulator/summaries.py`: every event's span [t_i, t_next) is clipped to the
interval and integrated on its own (the simulator inserts interpolated boundary events instead), and the
variance is E[x^2] - mean^2 rather than a sum of squared deviations.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow.compute as pc

from pi_platform.pitime import to_us
from pi_platform.simulator.plant import Plant

FOREVER = np.iinfo(np.int64).max // 2


@dataclass(frozen=True)
class Raw:
    ts: np.ndarray  # µs
    value: np.ndarray  # float, NaN for system states and strings
    good: np.ndarray  # PI Good flag (False for system states)
    state: np.ndarray  # digital or system state name, "" for numbers


def raw(plant: Plant, web_id: str, start: datetime, end: datetime) -> Raw:
    """Every archived value from two days before `start` to two days after `end`, so edges see neighbours."""
    table = plant.recorded(web_id, start - timedelta(days=2), end + timedelta(days=2))
    return Raw(
        pc.cast(table["timestamp"], "int64").to_numpy(),
        table["value"].to_numpy(zero_copy_only=False).astype(float),
        table["good"].to_numpy(zero_copy_only=False),
        np.array(pc.fill_null(table["digital_state"], "").to_pylist(), dtype=object),
    )


def time_weighted(r: Raw, lo: int, hi: int, step: bool) -> dict:
    """PI's time-weighted summaries over [lo, hi] with each value held (step) or linear to a good neighbour."""
    ok = r.good & ~np.isnan(r.value)
    nxt_ts = np.append(r.ts[1:], FOREVER)
    a, b = np.maximum(r.ts, lo), np.minimum(nxt_ts, hi)
    width = np.clip(b - a, 0, None).astype(float)
    used = r.good & (width > 0)
    good_us = float(width[used].sum())
    out = {"Count": good_us / 1e6, "PercentGood": 100.0 * good_us / (hi - lo)}
    used &= ok
    if not used.any():
        return out
    if step:
        va = vb = r.value
    else:
        nv, nok = np.append(r.value[1:], np.nan), np.append(ok[1:], False)
        with np.errstate(invalid="ignore", divide="ignore"):  # zero-width spans (same timestamp) are unused
            slope = np.where(nok, (nv - r.value) / (nxt_ts - r.ts), 0.0)
            va, vb = r.value + slope * (a - r.ts), r.value + slope * (b - r.ts)
    w, x, y = width[used], va[used], vb[used]
    mean = float(np.sum(w * (x + y) / 2) / good_us)
    square = float(np.sum(w * (x * x + x * y + y * y) / 3) / good_us)
    inside = ok & (r.ts >= lo) & (r.ts <= hi)
    candidates = np.concatenate([x, y, r.value[inside]])
    std = float(np.sqrt(max(square - mean * mean, 0.0)))
    out.update(Average=mean, Total=mean * (hi - lo) / 86_400e6, Minimum=float(candidates.min()),
               Maximum=float(candidates.max()), StdDev=std, PopulationStdDev=std)
    out["Range"] = out["Maximum"] - out["Minimum"]
    return out


def event_weighted(r: Raw, lo: int, hi: int, include_end: bool) -> dict:
    """PI's event-weighted summaries over [lo, hi) ([lo, hi] with include_end): every event weighs one."""
    chosen = (r.ts >= lo) & ((r.ts <= hi) if include_end else (r.ts < hi))
    n = int(chosen.sum())
    good = chosen & r.good
    out = {"Count": float(good.sum()), "PercentGood": 100.0 * good.sum() / n if n else 0.0}
    values = r.value[good & ~np.isnan(r.value)]
    if len(values):
        out.update(Average=float(values.mean()), Total=float(values.sum()), Minimum=float(values.min()),
                   Maximum=float(values.max()), PopulationStdDev=float(values.std()))
        out["Range"] = out["Maximum"] - out["Minimum"]
        if len(values) > 1:
            out["StdDev"] = float(values.std(ddof=1))
    return out


def interpolated(r: Raw, t: int, step: bool) -> tuple[bool, float | str]:
    """(good, number or state name) PI interpolates at t: a bad value stays bad until the next event."""
    p = int(np.searchsorted(r.ts, t, side="right")) - 1
    if not r.good[p]:
        return False, r.state[p]
    if np.isnan(r.value[p]) or r.state[p]:
        return True, r.state[p]
    q = p + 1
    if step or r.ts[p] == t or not (r.good[q] and not np.isnan(r.value[q])):
        return True, float(r.value[p])
    return True, float(r.value[p] + (r.value[q] - r.value[p]) * (t - r.ts[p]) / (r.ts[q] - r.ts[p]))


def hours(start: datetime, count: int, size: timedelta = timedelta(hours=1)) -> list[tuple[int, int]]:
    return [(to_us(start + k * size), to_us(start + (k + 1) * size)) for k in range(count)]
