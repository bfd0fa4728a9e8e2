"""Late groups waiting for their verification read: the collector's correction backlog.

Each late group (a PI correction, an out-of-order value, a group completed after its first values committed) costs a
read from PI and the rewrite of the data file holding it, ~15-20 ms together; a fresh value costs microseconds.
Verified in the micro-batch that brought them, a storm of them (a bulk edit of history, an interface flushing hours
of buffered data, the simulator's plant correcting 0.4 % of its values) held every fresh value behind their rewrites:
at 50,000 values/s the collector fell from 46,000 to 22,000 committed values/s within three minutes, and every
stream looked stale. So late groups queue here, oldest first; the collector reads them back in rounds of as many as
the budget (`CorrectionBudget`) allows, off the batch path, and the next micro-batch commits PI's answers; fresh
values keep flowing, and the status reports the backlog and its age.

A round is counted in read windows (`VERIFY_SPAN_US` of PI time), not in groups: the cost is per window (one read,
and the rewrite of the few files holding that second), whatever number of groups it verifies. So a round takes the
windows of the oldest waiting groups with *every* group waiting in them, once the oldest has waited the collector's
settle (`verify_settle_s`): corrections to one second of PI time come 5 s to minutes apart, so waiting lets one read
and rewrite answer several. Behind a storm the queue ages past the settle by itself and each read answers more: the
backlog finds the rate it can keep up with instead of starving at a fixed number of groups a round.

Durable: a commit lets the write-ahead log drop the channel messages that named its late groups, so the groups
still waiting are written down (`<state_dir>/pending_groups.json`, fsync'd) before that commit, and a restart
resumes them. A group verified and committed but still in the file is verified again after a crash: the read is
authoritative and an identical row is dropped, so that costs a read, never a doubled value.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pi_platform.streaming.gaps import durable_write
from pi_platform.streaming.state import read_json, write_json

PENDING_FILE = "pending_groups.json"
# PI time one verification read spans (aligned windows: groups of one second share a read and a file rewrite). A read
# returns every value of its streams in its window, so a wide one costs far more than the groups it is for: with
# corrections up to 5 minutes late at 50,000 values/s, one read over a batch's late groups returned up to 41,000
# values for ~20 groups.
VERIFY_SPAN_US = 1_000_000


class PendingGroups:
    """(web_id, timestamp µs) groups to verify, each with when it was first seen, in that order, and indexed by their
    read window."""

    def __init__(self, state_dir: Path, *, fsync: bool = True) -> None:
        self._path = state_dir / PENDING_FILE
        self._fsync = fsync
        saved = read_json(self._path) or {}
        self._groups: dict[tuple[str, int], float] = {}
        self._windows: dict[int, set[tuple[str, int]]] = {}
        for (web_id, ts), seen in saved.get("groups", []):
            self._put((str(web_id), int(ts)), float(seen))
        self._dirty = False

    def __len__(self) -> int:
        return len(self._groups)

    def _put(self, key: tuple[str, int], seen_at: float) -> None:
        self._groups[key] = seen_at
        self._windows.setdefault(key[1] // VERIFY_SPAN_US, set()).add(key)

    def _pop(self, key: tuple[str, int]) -> bool:
        if self._groups.pop(key, None) is None:
            return False
        window = self._windows[key[1] // VERIFY_SPAN_US]
        window.discard(key)
        if not window:
            del self._windows[key[1] // VERIFY_SPAN_US]
        return True

    def add(self, groups: pd.MultiIndex, seen_at: float) -> None:
        """Queue `groups`; one already waiting keeps its place."""
        for key in zip(groups.get_level_values(0), groups.get_level_values(1).astype("int64"), strict=True):
            key = (str(key[0]), int(key[1]))
            if key not in self._groups:
                self._put(key, seen_at)
                self._dirty = True

    def take(self, windows: int, seen_before: float = math.inf) -> pd.MultiIndex:
        """Every group waiting in the `windows` read windows that hold the longest-waiting groups first seen before
        `seen_before` (they stay queued until `discard`): a window's cost is paid once for all of its groups, the
        ones seen since included."""
        chosen: dict[int, None] = {}
        for (_, ts), seen in self._groups.items():
            if len(chosen) >= windows or seen >= seen_before:  # in first-seen order: the rest are newer
                break
            chosen.setdefault(ts // VERIFY_SPAN_US)
        keys = [key for window in chosen for key in sorted(self._windows[window])]
        return pd.MultiIndex.from_tuples(keys, names=["web_id", "ts"]) if keys else _empty()

    def discard(self, groups: pd.MultiIndex) -> None:
        """Forget groups whose verification was committed (written down with the next `save`)."""
        for key in zip(groups.get_level_values(0), groups.get_level_values(1).astype("int64"), strict=True):
            self._dirty = self._pop((str(key[0]), int(key[1]))) or self._dirty

    def drop_streams(self, web_ids: set[str]) -> int:
        """Forget every group of these streams (tags PI refuses: nothing to verify them against); how many."""
        gone = [key for key in self._groups if key[0] in web_ids]
        for key in gone:
            self._pop(key)
        self._dirty = self._dirty or bool(gone)
        return len(gone)

    def age_s(self, now: float) -> float | None:
        """How long the oldest group has waited (None: nothing waits)."""
        first = next(iter(self._groups.values()), None)
        return None if first is None else max(0.0, now - first)

    def save(self) -> None:
        """Write the queue down if it changed; before the commit that lets the WAL forget where it came from."""
        if not self._dirty:
            return
        document = {"groups": list(self._groups.items())}  # [[[web_id, ts], first seen], ...]; no loop in Python
        (durable_write if self._fsync else write_json)(self._path, document)
        self._dirty = False


@dataclass
class CorrectionBudget:
    """How many read windows (of late groups) one verification round reads. Doubled after a round that used all of
    it while the collector was caught up (the oldest message waiting had waited no longer than the batch age allows,
    plus `slack_s`); cut when it is behind, at least by half and in proportion to how far behind (a batch that waited
    8 s against a 1-s allowance divides it by 8, so one oversized batch is not followed by several), never below
    `low`: corrections take the time fresh values leave, and the backlog always drains once the storm passes. It
    grows only while used, so a storm after a quiet hour starts from what the last busy batch could afford, not from
    `high`. A round is read and its rewrite prepared beside the batches (`ahead.py`), so batches on time say nothing
    of its own cost: a round that took longer than `round_s` from its start to its answers being ready halves it
    too (at 50,000 values/s the budget otherwise doubled to rounds of hundreds of windows whose preparation took
    minutes, and no correction was committed meanwhile). The bound is wide: it stops such a runaway and leaves the
    ordinary rounds (reads and preparation of a second or two) alone."""

    low: int = 8
    high: int = 512
    slack_s: float = 0.5
    round_s: float = 10.0
    now: int = 32

    def next(self, behind_s: float, max_age_s: float, used: int, took_s: float = 0.0) -> int:
        """This batch's budget, after a round that verified `used` windows in `took_s` and a batch that found the
        oldest message waiting `behind_s`."""
        allowed = max_age_s + self.slack_s
        if behind_s > allowed:
            self.now = max(self.low, min(self.now // 2, int(self.now * allowed / behind_s)))
        elif took_s > self.round_s:
            self.now = max(self.low, self.now // 2)
        elif used >= self.now:
            self.now = min(self.high, self.now * 2)
        return self.now


def windows(groups: pd.MultiIndex) -> int:
    """How many read windows `groups` fall in (what a round's budget counts)."""
    return int(pd.unique(groups.get_level_values(1).to_numpy("int64") // VERIFY_SPAN_US).size) if len(groups) else 0


def _empty() -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([[], []], names=["web_id", "ts"])
