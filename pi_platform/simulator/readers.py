"""Value reads on top of the plant: recorded with maxCount and boundaries, interpolation (summaries: `summaries`).

Kept apart from the HTTP handlers so channels, batch and tests share one implementation, and so a
year-long request with maxCount=1000 only generates the days it needs.
"""

from collections.abc import Callable

import numpy as np

from pi_platform.simulator.catalog import Point
from pi_platform.simulator.plant import Plant
from pi_platform.simulator.values import HOUR_US, K_NUMBER, NEVER, Block, as_of, system_block

_MINUTE_US = 60_000_000
DAY_US = 86_400_000_000
CHUNK_US = 7 * DAY_US  # generate long ranges a week at a time so maxCount stops the work early
LOOKBACK_DAYS = 30
NO_DATA = 248
# (point, start_us, end_us, now_us) -> events: Plant.block (archive) or Plant.exceptions (snapshot).
Series = Callable[[Point, int, int, int], Block]


def recorded(plant: Plant, point: Point, start_us: int, end_us: int, now_us: int, max_count: int) -> Block:
    """Inside values from start to end (descending if end < start), at most max_count of them."""
    if end_us >= start_us:
        blocks, total, t = [], 0, start_us
        while t <= end_us and t <= now_us and total < max_count:
            t2 = min(t + CHUNK_US - 1, end_us)
            block = plant.block(point, t, t2, now_us)
            blocks.append(block)
            total += len(block)
            t = t2 + 1
        out = Block.concat(blocks) if blocks else plant.block(point, start_us, start_us - 1, now_us)
        return out.take(slice(0, max_count))
    blocks, total, t = [], 0, min(start_us, now_us)
    while t >= end_us and total < max_count:
        t1 = max(t - CHUNK_US + 1, end_us)
        block = plant.block(point, t1, t, now_us)
        blocks.append(block.take(slice(None, None, -1)))
        total += len(block)
        t = t1 - 1
    out = Block.concat(blocks) if blocks else plant.block(point, end_us, end_us - 1, now_us)
    return out.take(slice(0, max_count))


def recorded_many(
    plant: Plant, points: list[Point], start_us: int, end_us: int, now_us: int, max_count: int
) -> list[Block]:
    """`recorded` of every point, the generator's output of all of them made in one pass where that is what PI
    holds (`Plant.is_generated`) and the range is one ascending chunk: a stream set's day of ~50 tags."""
    stop = min(end_us, now_us)
    # Asked once per point: a failure or edit injected meanwhile (admin requests run on other threads) must not
    # change which points the one pass covered.
    flags = [plant.is_generated(p) for p in points]
    generated = [p for p, flag in zip(points, flags) if flag]
    if start_us > stop or end_us - start_us >= CHUNK_US or len(generated) < 2:
        return [recorded(plant, p, start_us, end_us, now_us, max_count) for p in points]
    blocks = iter(plant.generator.blocks(generated, start_us, stop))
    return [
        as_of(next(blocks), now_us).take(slice(0, max_count))
        if flag
        else recorded(plant, p, start_us, end_us, now_us, max_count)
        for p, flag in zip(points, flags)
    ]


def last_before(
    plant: Plant, point: Point, t_us: int, now_us: int, inclusive: bool = True, series: Series | None = None
) -> Block:
    """The last event of `series` (default the archive) at or before t (or strictly before), searching back up
    to LOOKBACK_DAYS; the last minute first, then the hour before it, so a snapshot read usually touches one or two
    cached buckets. (An hour first generated an hour of every fast tag afresh: at 50 values a second per tag, one
    poll of 1,000 snapshots was 180 M values, half the simulator's CPU in the 50,000 values/s live bench.)"""
    read = series or plant.block
    end = min(t_us if inclusive else t_us - 1, now_us)
    windows = [(end - _MINUTE_US + 1, end), (end - HOUR_US + 1, end - _MINUTE_US)]
    windows += [(end - (k + 1) * DAY_US + 1, end - k * DAY_US) for k in range(LOOKBACK_DAYS)]
    for start, stop in windows:
        block = read(point, start, stop, now_us)
        if len(block):
            return block.take(slice(len(block) - 1, len(block)))
    return read(point, end, end - 1, now_us)


def first_after(plant: Plant, point: Point, t_us: int, now_us: int) -> Block:
    start = t_us + 1
    while start <= now_us:
        block = plant.block(point, start, min(start + DAY_US - 1, now_us), now_us)
        if len(block):
            return block.take(slice(0, 1))
        start += DAY_US
    return plant.block(point, start, start - 1, now_us)


def synthetic(ts: np.ndarray, template: Block, index: np.ndarray) -> Block:
    """A block at new timestamps carrying the values of `template[index]` (interpolation results)."""
    picked = template.take(index)
    picked.ts = ts.astype(np.int64)
    picked.pos = np.zeros(len(ts), dtype=np.int32)
    picked.substituted = np.zeros(len(ts), dtype=bool)
    picked.annotated = np.zeros(len(ts), dtype=bool)
    picked.corr_at = np.full(len(ts), NEVER, dtype=np.int64)
    return picked


def no_data(ts: np.ndarray) -> Block:
    return system_block(ts, NO_DATA)


def interpolate(plant: Plant, point: Point, times: np.ndarray, now_us: int) -> Block:
    """Values at arbitrary times: linear between good numbers, else the previous value (step, states)."""
    if len(times) == 0:
        return no_data(times)
    t0, t1 = int(times.min()), min(int(times.max()), now_us)
    history = plant.block(point, t0 - DAY_US, min(t1 + DAY_US, now_us), now_us)
    before = last_before(plant, point, t0 - DAY_US - 1, now_us)
    history = Block.concat([before, history]) if len(before) else history
    if len(history) == 0:
        return no_data(times)
    prev = np.searchsorted(history.ts, times, side="right") - 1
    valid = prev >= 0
    result = synthetic(times, history, np.maximum(prev, 0))
    linear = not point.step
    if linear:
        nxt = np.minimum(prev + 1, len(history) - 1)
        use = (
            valid
            & (nxt > prev)
            & (history.kind[np.maximum(prev, 0)] == K_NUMBER)
            & (history.kind[nxt] == K_NUMBER)
            & (history.ts[np.maximum(prev, 0)] < times)
            & (times <= now_us)
        )
        if use.any():
            p, q = np.maximum(prev, 0)[use], nxt[use]
            frac = (times[use] - history.ts[p]) / (history.ts[q] - history.ts[p])
            result.num[use] = history.num[p] + frac * (history.num[q] - history.num[p])
    if not valid.all():
        missing = no_data(times[~valid])
        for name in ("kind", "num", "code", "sidx", "questionable"):
            getattr(result, name)[~valid] = getattr(missing, name)
    return result
