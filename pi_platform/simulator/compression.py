"""Exception and compression settings of each point, chosen so the values the plant produces obey them.

PI interfaces send a value on exception (|change| > excdev, or excmax seconds since the last one) and the
archive keeps it on compression (compdev / compmax); see §9 of the protocol reference. A stale-tag check reads
these attributes, so they must be honest:

- Continuous tags archive every scan (excdev = compdev = 0). Their scan is irregular (random instants, about
  `values_per_minute`), so excmax is max(600 s, 20 x the mean interval): far beyond any gap the generator
  leaves, i.e. a healthy continuous tag's snapshot is never older than excmax.
- Flat tags (flat.py) change by at least one quantum (2% of span), so excdev (0.5%) and compdev (1%) pass
  every change and nothing else; their snapshot moves on the excmax grid, their archive on the compmax grid.
"""

from dataclasses import dataclass

from pi_platform.simulator.catalog import DIGITAL, INTEGER, STRING, Point

DEFAULT_EXCMAX_S = 600
DEFAULT_COMPMAX_S = 28_800
CONTINUOUS_EXCMAX_INTERVALS = 20
FLAT_SCAN_S = 10
FLAT_QUANTUM_OF_SPAN = 0.02  # flat tags step between levels at least this share of span apart
# Scan classes of every simulated interface (`location4` = position + 1), like UniInt /f= parameters.
SCAN_CLASSES_S: tuple[int, ...] = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


@dataclass(frozen=True)
class Compression:
    """The exception/compression point attributes of one tag (seconds for times, engineering units for devs)."""

    scan_s: int  # period of the tag's scan class
    excdev: float
    excmin_s: int
    excmax_s: int
    compdev: float
    compmin_s: int
    compmax_s: int
    span: float

    @property
    def location4(self) -> int:
        return SCAN_CLASSES_S.index(self.scan_s) + 1

    @property
    def excdevpercent(self) -> float:
        return _percent(self.excdev, self.span)

    @property
    def compdevpercent(self) -> float:
        return _percent(self.compdev, self.span)


def compression_for(point: Point, instants_per_hour: float) -> Compression:
    """Settings consistent with how the generator produces this point's values at that rate."""
    if point.flat:
        quantum = 0.0 if point.kind in (DIGITAL, STRING) else flat_quantum(point)
        return Compression(
            FLAT_SCAN_S, quantum / 4, 0, DEFAULT_EXCMAX_S, quantum / 2, 0, DEFAULT_COMPMAX_S, point.span
        )
    interval_s = 3600.0 / instants_per_hour
    scan_s = min(SCAN_CLASSES_S, key=lambda c: abs(c - interval_s) / c)
    excmax_s = max(DEFAULT_EXCMAX_S, 60 * -(-int(CONTINUOUS_EXCMAX_INTERVALS * interval_s) // 60))
    return Compression(scan_s, 0.0, 0, excmax_s, 0.0, 0, max(DEFAULT_COMPMAX_S, excmax_s), point.span)


def flat_quantum(point: Point) -> float:
    """Smallest step of a flat numeric tag (integers step at least by 1 once rounded)."""
    quantum = point.span * FLAT_QUANTUM_OF_SPAN
    return max(quantum, 1.0) if point.kind == INTEGER else quantum


def _percent(dev: float, span: float) -> float:
    return round(100.0 * dev / span, 6) if span else 0.0
