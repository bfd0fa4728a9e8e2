"""PI summaries (`streams/{webId}/summary`, `streamsets/summary`) computed the way PI computes them.

Kept apart from the HTTP handlers so tests can name the rules, and so one read of a tag's events serves
every interval of a request (a day at 1 h is one archive read, not 24).

The rules (AF SDK `AFCalculationBasis`, `AFSummaryTypes`, `AFTimestampCalculation`; PI Web API "Summary
Type" / "Calculation Basis" topics). Where the documentation leaves a choice open, the choice is written here
and in the simulator README:

- Good = not a system state (`Shutdown`, `I/O Timeout`, ...). Bad values never enter a number; they count
  against PercentGood.
- Time-weighted: the interval [start, end] gets interpolated values at both ends (PI "generates interpolated
  events at the boundaries"); each event holds for the time until the next. A stepped point (`Step`, or
  TimeWeightedDiscrete) holds its value flat; a continuous point (or TimeWeightedContinuous) is linear between
  two good neighbours and holds the previous value when the next one is bad. A span that starts at a bad value
  (or before the first value, or after the simulator's now) is bad time. Average = integral / good time;
  Total = Average x interval length in days (PI assumes per-day rates and scales a total with bad data up by
  the good fraction, which is the same thing); Count = seconds of good time ("sum of event time duration");
  PercentGood = good time / interval length. Minimum/Maximum look at the boundary values and every good
  event in [start, end]. StdDev and PopulationStdDev are both the time-weighted standard deviation
  sqrt(integral of (x - Average)^2 / good time) (CHOICE: PI documents no sample correction for time weights).
- Event-weighted: every event has weight 1, nothing is interpolated. Events on an interval's edges: both
  edges when the request is one interval; with several intervals the earlier edge only, so an event on a
  shared edge is counted once (ExcludeMostRecentEvent / ExcludeEarliestEvent / IncludeBothEnds say it
  explicitly). Count = good events; PercentGood = good events / events (0 without events); StdDev needs two
  good events, everything else one.
- Non-numeric points (digital, string): only Count and PercentGood; other types give PI's error value.
- A type that cannot be computed (no good data, too few events) gives the system state `Calc Failed` with
  Good false, never a made-up number (CHOICE: PI does not document which state it writes).
- TotalWithUOM, time-weighted: a rate unit `X/s|min|h|d` integrates in its own time unit and is reported in X
  (m3/h over one hour -> m3); no unit -> the same as Total; any other unit -> error value (PI: "no valid units").
  Event-weighted: the sum, in the events' unit.
- Timestamps (`timeType`): Auto = the time of the extreme for Minimum/Maximum, else the interval's start as
  requested (the later edge for a descending request); EarliestTime / MostRecentTime = that edge.
"""

from dataclasses import dataclass

import numpy as np

from pi_platform.simulator import readers
from pi_platform.simulator.catalog import INTEGER, NUMERIC, Point
from pi_platform.simulator.plant import Plant
from pi_platform.simulator.values import K_NUMBER, K_SYSTEM, Block

DAY_US = 86_400_000_000
SUMMARY_TYPES = (
    "Total",
    "Average",
    "Minimum",
    "Maximum",
    "Range",
    "StdDev",
    "PopulationStdDev",
    "Count",
    "PercentGood",
    "TotalWithUOM",
)
NON_NUMERIC_TYPES = ("Count", "PercentGood")
GROUPS = {"all": SUMMARY_TYPES, "allfornonnumeric": NON_NUMERIC_TYPES}
TIME_TYPES = ("Auto", "EarliestTime", "MostRecentTime")
CALC_FAILED = 249  # PI SYSTEM state "Calc Failed"
_RATE_UNITS_US = {"s": 1_000_000, "sec": 1_000_000, "min": 60_000_000, "h": 3_600_000_000, "hr": 3_600_000_000,
                  "d": DAY_US, "day": DAY_US}


@dataclass(frozen=True)
class Basis:
    """A calculationBasis: weighting, interpolation (None = the point's Step), event-weighted edge rules
    (None = PI's default: both edges for one interval, the earlier edge for several)."""

    name: str
    time_weighted: bool
    step: bool | None = None
    include_start: bool | None = None
    include_end: bool | None = None


BASES = {
    b.name.lower(): b
    for b in (
        Basis("TimeWeighted", True),
        Basis("TimeWeightedContinuous", True, step=False),
        Basis("TimeWeightedDiscrete", True, step=True),
        Basis("EventWeighted", False),
        Basis("EventWeightedExcludeMostRecentEvent", False, include_start=True, include_end=False),
        Basis("EventWeightedExcludeEarliestEvent", False, include_start=False, include_end=True),
        Basis("EventWeightedIncludeBothEnds", False, include_start=True, include_end=True),
    )
}


@dataclass(frozen=True)
class Summary:
    """One SummaryValue: `value` None means PI's error value (Calc Failed, Good false)."""

    type: str
    timestamp_us: int
    value: float | None
    units: str


def intervals(start_us: int, end_us: int, duration_us: int | None) -> list[tuple[int, int]]:
    """(start, end) of each summary interval in request order; the last one is cut at the range's end.
    Without a duration the whole range is one interval."""
    if duration_us is None or duration_us >= abs(end_us - start_us) or end_us == start_us:
        return [(start_us, end_us)]
    sign = 1 if end_us > start_us else -1
    edges = list(range(start_us, end_us, sign * duration_us)) + [end_us]
    return list(zip(edges[:-1], edges[1:]))


def is_numeric(point: Point) -> bool:
    return point.kind in (NUMERIC, INTEGER)


def summarize(
    plant: Plant,
    point: Point,
    spans: list[tuple[int, int]],
    now_us: int,
    types: list[str],
    basis: Basis,
    time_type: str = "Auto",
) -> list[Summary]:
    """Every requested type over every interval, grouped by type (as PI Web API lists them)."""
    starts = np.array([min(s) for s in spans], dtype=np.int64)  # chronological edges, whatever the order
    ends = np.array([max(s) for s in spans], dtype=np.int64)
    events = plant.block(point, int(starts.min()), int(ends.max()), now_us)  # one archive read for all intervals
    if basis.time_weighted:  # the values at every interval edge, in one interpolation
        edges = readers.interpolate(plant, point, np.minimum(np.concatenate([starts, ends]), now_us), now_us)
        edges_lo, edges_hi = edges.take(slice(0, len(spans))), edges.take(slice(len(spans), None))
    rows: dict[str, list[Summary]] = {t: [] for t in types}
    for i, (requested_start, _) in enumerate(spans):
        lo, hi = int(starts[i]), int(ends[i])
        if basis.time_weighted:
            stats = _time_weighted(events, edges_lo.take(slice(i, i + 1)), edges_hi.take(slice(i, i + 1)), lo, hi,
                                   min(hi, now_us), point, basis)
        else:
            stats = _event_weighted(events, lo, hi, point, basis, single=len(spans) == 1)
        edge = {"EarliestTime": lo, "MostRecentTime": hi}.get(time_type, requested_start)
        for kind in types:
            value, at = _pick(kind, stats, point)
            stamp = at if at is not None and time_type == "Auto" else edge  # `at`: a Minimum/Maximum's own time
            rows[kind].append(Summary(kind, stamp, value, _units(kind, point, basis)))
    return [row for kind in types for row in rows[kind]]


@dataclass
class _Stats:
    """What every summary type of one interval is picked from."""

    count: float
    percent_good: float
    mean: float | None = None
    total: float | None = None
    total_uom: float | None = None
    minimum: tuple[float, int] | None = None
    maximum: tuple[float, int] | None = None
    std: float | None = None
    population_std: float | None = None


def _good(block: Block) -> np.ndarray:
    return block.kind != K_SYSTEM


def _time_weighted(events: Block, at_lo: Block, at_hi: Block, lo: int, hi: int, live_hi: int, point: Point,
                   basis: Basis) -> _Stats:
    length = max(hi - lo, 1)
    if live_hi <= lo:  # entirely after the simulator's now: no data at all
        return _Stats(0.0, 0.0)
    a, b = np.searchsorted(events.ts, lo, "right"), np.searchsorted(events.ts, live_hi, "left")  # strictly inside
    inner = events.take(slice(a, b))
    ts = np.concatenate([[lo], inner.ts, [live_hi]]).astype(np.int64)
    good = np.concatenate([_good(at_lo), _good(inner), _good(at_hi)])
    widths = np.diff(ts).astype(np.float64)
    good_left = good[:-1]
    good_us = float(widths[good_left].sum())
    stats = _Stats(good_us / 1e6, 100.0 * good_us / length)
    if not is_numeric(point) or good_us == 0:
        return stats
    numbers = np.concatenate([at_lo.num, inner.num, at_hi.num])
    number_ok = good & (np.concatenate([at_lo.kind, inner.kind, at_hi.kind]) == K_NUMBER)
    left = numbers[:-1]
    step = point.step if basis.step is None else basis.step
    right = left if step else np.where(number_ok[1:], numbers[1:], left)
    w, x0, x1 = widths[good_left], left[good_left], right[good_left]
    mean = float(np.sum(w * (x0 + x1) / 2) / good_us)
    d0, d1 = x0 - mean, x1 - mean
    variance = float(np.sum(w * (d0 * d0 + d0 * d1 + d1 * d1) / 3) / good_us)  # exact for linear pieces
    stats.mean = mean
    stats.total = mean * length / DAY_US
    stats.total_uom = _total_with_uom(mean, length, point.units)
    stats.std = stats.population_std = float(np.sqrt(max(variance, 0.0)))
    # extremes: the boundary values and every good event in [lo, live_hi]
    a2, b2 = np.searchsorted(events.ts, lo, "left"), np.searchsorted(events.ts, live_hi, "right")
    span = events.take(slice(a2, b2))
    cand_v = np.concatenate([at_lo.num, span.num, at_hi.num])
    cand_t = np.concatenate([[lo], span.ts, [live_hi]])
    cand_ok = np.concatenate([number_ok[:1], _good(span) & (span.kind == K_NUMBER), number_ok[-1:]])
    stats.minimum, stats.maximum = _extremes(cand_v[cand_ok], cand_t[cand_ok])
    return stats


def _event_weighted(events: Block, lo: int, hi: int, point: Point, basis: Basis, single: bool) -> _Stats:
    start = basis.include_start if basis.include_start is not None else True
    end = basis.include_end if basis.include_end is not None else single
    a = np.searchsorted(events.ts, lo, "left" if start else "right")
    b = np.searchsorted(events.ts, hi, "right" if end else "left")
    chosen = events.take(slice(a, max(a, b)))
    good = _good(chosen)
    n = len(chosen)
    stats = _Stats(float(good.sum()), 100.0 * float(good.sum()) / n if n else 0.0)
    values, stamps = chosen.num[good & (chosen.kind == K_NUMBER)], chosen.ts[good & (chosen.kind == K_NUMBER)]
    if not is_numeric(point) or not len(values):
        return stats
    stats.mean = float(values.mean())
    stats.total = float(values.sum())
    stats.total_uom = stats.total  # a sum of events keeps the events' unit
    stats.minimum, stats.maximum = _extremes(values, stamps)
    stats.population_std = float(values.std())
    stats.std = float(values.std(ddof=1)) if len(values) > 1 else None
    return stats


def _extremes(values: np.ndarray, stamps: np.ndarray) -> tuple[tuple[float, int] | None, tuple[float, int] | None]:
    if not len(values):
        return None, None
    i, j = int(np.argmin(values)), int(np.argmax(values))
    return (float(values[i]), int(stamps[i])), (float(values[j]), int(stamps[j]))


def _pick(kind: str, stats: _Stats, point: Point) -> tuple[float | None, int | None]:
    """(value or None for PI's error value, time of the extreme for Minimum/Maximum)."""
    if kind == "Count":
        return stats.count, None
    if kind == "PercentGood":
        return stats.percent_good, None
    if not is_numeric(point):
        return None, None
    if kind in ("Minimum", "Maximum"):
        found = stats.minimum if kind == "Minimum" else stats.maximum
        return (None, None) if found is None else found
    if kind == "Range":
        ok = stats.minimum is not None and stats.maximum is not None
        return (stats.maximum[0] - stats.minimum[0] if ok else None), None  # type: ignore[index]
    return {
        "Total": stats.total,
        "Average": stats.mean,
        "StdDev": stats.std,
        "PopulationStdDev": stats.population_std,
        "TotalWithUOM": stats.total_uom,
    }[kind], None


def _rate_unit(units: str) -> tuple[str, int] | None:
    """'m3/h' -> ('m3', one hour in µs); None when the unit is not an amount per time."""
    amount, slash, per = units.rpartition("/")
    return (amount, _RATE_UNITS_US[per]) if slash and amount and per in _RATE_UNITS_US else None


def _total_with_uom(mean: float, length_us: int, units: str) -> float | None:
    if units == "":
        return mean * length_us / DAY_US
    rate = _rate_unit(units)
    return None if rate is None else mean * length_us / rate[1]


def _units(kind: str, point: Point, basis: Basis) -> str:
    """The stream's units, except a time-weighted TotalWithUOM of a rate (its amount unit)."""
    if kind == "TotalWithUOM" and basis.time_weighted:
        rate = _rate_unit(point.units)
        return rate[0] if rate else point.units
    return point.units
