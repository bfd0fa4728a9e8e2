"""Reads at chosen instants (recorded at a time, by retrieval mode) and plot sampling, on top of `readers`.

Pure functions of the plant like `readers`, so the HTTP handlers and the tests' ground truth are separate
code: the tests recompute these from `plant.recorded` one value at a time.
"""

import numpy as np

from pi_platform.simulator import readers
from pi_platform.simulator.catalog import Point
from pi_platform.simulator.plant import Plant
from pi_platform.simulator.values import K_NUMBER, Block

# AFRetrievalMode names accepted by recordedattime(s); Auto reads like AtOrBefore for PI points.
RETRIEVAL_MODES = ("Auto", "AtOrBefore", "Before", "AtOrAfter", "After", "Exact")


def recorded_at(plant: Plant, point: Point, t_us: int, mode: str, now_us: int) -> Block:
    """The archive value `mode` picks at `t_us` (one value), or `No Data` at `t_us` when there is none.

    Several values at one timestamp: the before-modes take the last of them, the after-modes the first,
    Exact the last one exactly at `t_us`.
    """
    if mode in ("Auto", "AtOrBefore", "Exact"):
        block = readers.last_before(plant, point, t_us, now_us, inclusive=True)
        if mode == "Exact" and len(block) and int(block.ts[0]) != t_us:
            block = block.take(slice(0, 0))
    elif mode == "Before":
        block = readers.last_before(plant, point, t_us, now_us, inclusive=False)
    elif mode == "AtOrAfter":
        block = readers.first_after(plant, point, t_us - 1, now_us)
    elif mode == "After":
        block = readers.first_after(plant, point, t_us, now_us)
    else:
        raise ValueError(mode)
    return block if len(block) else readers.no_data(np.array([t_us], dtype=np.int64))


def plot(plant: Plant, point: Point, start_us: int, end_us: int, intervals: int, now_us: int) -> Block:
    """PI's plot values: the range cut into `intervals` equal intervals, each giving at most five recorded
    values — its first, last, minimum and maximum (numbers) and its first exceptional value (a digital or
    system state) — without repeats, in time order (reversed when end < start)."""
    lo, hi = min(start_us, end_us), max(start_us, end_us)
    block = readers.recorded(plant, point, lo, hi, now_us, np.iinfo(np.int64).max)
    if len(block) == 0:
        return block
    span = max(hi - lo, 1)
    interval = np.minimum((block.ts - lo) * intervals // span, intervals - 1)
    starts = np.flatnonzero(np.r_[True, interval[1:] != interval[:-1]])
    ends = np.r_[starts[1:], len(block)] - 1
    keep = [starts, ends]
    numeric = block.kind == K_NUMBER
    if numeric.any():
        order = np.lexsort((block.num, ~numeric, interval))  # per interval: numbers by value, then the rest
        counts = np.bincount(interval[numeric], minlength=intervals)
        first_of = np.r_[0, np.cumsum(np.bincount(interval, minlength=intervals))][:-1]
        has = counts > 0
        keep += [order[first_of[has]], order[first_of[has] + counts[has] - 1]]
    exceptional = np.flatnonzero(~numeric)
    if len(exceptional):
        _, first = np.unique(interval[exceptional], return_index=True)
        keep.append(exceptional[first])
    chosen = np.unique(np.concatenate(keep))
    out = block.take(chosen)
    return out if end_us >= start_us else out.take(slice(None, None, -1))
