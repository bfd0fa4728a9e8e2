"""Tag and interface failures (stuck tags, dead interfaces, deleted tags) as windows over each tag's events.

A failure is a window (start, end] in which a tag produces no events at all, neither archive nor snapshot
(end is NEVER while it lasts). In `io_timeout` mode the interface first writes the system state I/O Timeout
(246) at the window start, as PI interfaces do when the device stops answering; in `silent` mode the snapshot
simply stops. When a window closes, a flat tag's interface re-sends the current level at that instant (a
value after a system state always passes exception and compression); continuous tags just resume scanning.
A deleted tag is an open silent window from the deletion on, and the point is unknown from then on.

Failures come from the admin API at run time or from `SimulatorConfig.failures` at start; the plant applies
them to every series it serves, so `plant.recorded` / `plant.snapshot` remain the exact ground truth.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from pi_platform.errors import ConfigError
from pi_platform.pitime import PITimeError, format_time, from_us, parse_time, to_us
from pi_platform.simulator.catalog import Catalog, Point
from pi_platform.simulator.values import NEVER, Block, system_block

SILENT, IO_TIMEOUT = "silent", "io_timeout"
MODES = (SILENT, IO_TIMEOUT)
TAG, INTERFACE, DELETE = "tag", "interface", "delete"
KINDS = (TAG, INTERFACE, DELETE)
IO_TIMEOUT_CODE = 246


class FailureError(ConfigError):
    """A failure that names nothing or makes no sense (unknown tag/interface, bad mode): a config error at
    start, a 400 from the admin API."""


@dataclass
class Failure:
    """`kind` tag (stuck tag), interface (all tags of a pointsource) or delete; `target` a tag or pointsource."""

    kind: str
    target: str
    mode: str
    start_us: int
    end_us: int = NEVER

    @property
    def start(self) -> datetime:
        return from_us(self.start_us)

    @property
    def end(self) -> datetime | None:
        return None if self.end_us == NEVER else from_us(self.end_us)

    @property
    def is_open(self) -> bool:
        return self.end_us == NEVER

    def covers(self, ts: np.ndarray) -> np.ndarray:
        return (ts > self.start_us) & (ts <= self.end_us)

    def as_json(self) -> dict[str, object]:
        end = self.end
        return {
            "kind": self.kind,
            "target": self.target,
            "mode": self.mode,
            "at": format_time(self.start),
            "until": None if end is None else format_time(end),
        }

    @classmethod
    def from_json(cls, data: dict, now: datetime) -> "Failure":
        """A scheduled failure from config: {"kind", "target", "mode"?, "at", "until"?}; times in PI syntax."""
        kind, mode = data.get("kind"), data.get("mode", SILENT)
        if kind not in KINDS or mode not in MODES or not data.get("target") or not data.get("at"):
            raise FailureError(
                f"bad failure {data!r}: need kind ({'|'.join(KINDS)}), target, at, optional mode "
                f"({'|'.join(MODES)}) and until"
            )
        try:
            start = to_us(parse_time(data["at"], now=now))
            end = to_us(parse_time(data["until"], now=now)) if data.get("until") else NEVER
        except PITimeError as exc:
            raise FailureError(f"bad failure {data!r}: {exc}") from None
        if end < start or (kind == DELETE and (end != NEVER or mode != SILENT)):
            raise FailureError(f"bad failure {data!r}: until before at, or a delete with a mode or an end")
        return cls(kind, str(data["target"]), mode, start, end)


class Failures:
    """Every failure so far, indexed by tag and by pointsource for the per-block lookups."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._all: list[Failure] = []
        self._by_tag: dict[int, list[Failure]] = {}
        self._by_interface: dict[str, list[Failure]] = {}
        self._lock = threading.Lock()

    def all(self) -> list[Failure]:
        return list(self._all)

    def windows(self, point: Point) -> list[Failure]:
        return [*self._by_tag.get(point.index, ()), *self._by_interface.get(point.pointsource, ())]

    @property
    def has_deletions(self) -> bool:
        return any(f.kind == DELETE for f in self._all)

    def deleted_at(self, point: Point) -> int | None:
        return next((f.start_us for f in self._by_tag.get(point.index, ()) if f.kind == DELETE), None)

    def add(self, failure: Failure) -> bool:
        """Record a failure; False (nothing done) if the same kind is already open on that target."""
        if failure.mode not in MODES:
            raise FailureError(f"unknown mode {failure.mode!r}; use one of {', '.join(MODES)}")
        key, index = self._index(failure.kind, failure.target)
        with self._lock:
            existing = index.setdefault(key, [])
            if any(f.is_open and f.kind in (failure.kind, DELETE) for f in existing):
                return False
            existing.append(failure)
            self._all.append(failure)
        return True

    def close(self, kind: str, target: str, at_us: int) -> Failure | None:
        """End the open failure of that kind on target at `at` (the failure if there was one)."""
        key, index = self._index(kind, target)
        with self._lock:
            failure = next((f for f in index.get(key, ()) if f.is_open and f.kind == kind), None)
            if failure is not None:
                failure.end_us = max(at_us, failure.start_us)
        return failure

    def _index(self, kind: str, target: str) -> "tuple[int | str, dict[Any, list[Failure]]]":
        """The key and index a failure of that kind on that target lives in (unknown targets raise)."""
        if kind == INTERFACE:
            if target not in self.catalog.interfaces:
                raise FailureError(f"unknown interface (pointsource) {target!r}")
            return target, self._by_interface
        point = self.catalog.point_by_name(target)
        if point is None:
            raise FailureError(f"unknown tag {target!r}")
        return point.index, self._by_tag


def apply(
    block: Block, windows: list[Failure], start_us: int, end_us: int, resend: Callable[[int], Block] | None
) -> Block:
    """Events of [start, end] with failure windows cut out, I/O Timeout written at io_timeout starts and, for
    flat tags (`resend` gives the level at an instant), the level re-sent when a window closes. Marks and
    re-sends that fall inside another window are not written (a tag stuck on its own stays stuck)."""
    if not windows:
        return block
    covered = np.zeros(len(block), dtype=bool)
    for failure in windows:
        covered |= failure.covers(block.ts)
    if covered.any():
        block = block.take(~covered)
    extra: list[Block] = []
    for failure in windows:
        others = [f for f in windows if f is not failure]
        instant = np.array([failure.start_us], dtype=np.int64)
        if failure.mode == IO_TIMEOUT and start_us <= failure.start_us <= end_us and not _inside(others, instant):
            extra.append(system_block(instant, IO_TIMEOUT_CODE))
        instant = np.array([failure.end_us], dtype=np.int64)
        if resend is not None and start_us <= failure.end_us <= end_us and not _inside(others, instant):
            extra.append(resend(failure.end_us))
    return _merge(block, extra) if extra else block


def _inside(windows: list[Failure], instant: np.ndarray) -> bool:
    return any(bool(f.covers(instant)[0]) for f in windows)


def _merge(block: Block, extra: list[Block]) -> Block:
    """Insert events into a sorted block; one at an existing timestamp goes after the values already there."""
    merged = Block.concat([block, *extra])
    merged = merged.take(np.argsort(merged.ts, kind="stable"))
    first = np.ones(len(merged), dtype=bool)
    first[1:] = merged.ts[1:] != merged.ts[:-1]
    starts = np.flatnonzero(first)
    merged.pos = (np.arange(len(merged)) - starts[np.cumsum(first) - 1]).astype(np.int32)
    return merged
