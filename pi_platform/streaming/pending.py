"""Late groups waiting for their verification read: the collector's correction backlog.

Each late group (a PI correction, an out-of-order value, a group completed after its first values committed) costs a
read from PI and the rewrite of the data file holding it, ~15-20 ms together; a fresh value costs microseconds.
Verified in the micro-batch that brought them, a storm of them (a bulk edit of history, an interface flushing hours
of buffered data, the simulator's plant correcting 0.4 % of its values) held every fresh value behind their rewrites:
at 50,000 values/s the collector fell from 46,000 to 22,000 committed values/s within three minutes, and every
stream looked stale. So late groups queue here, oldest first; the collector reads them back in rounds of as many as
the budget (`CorrectionBudget`) allows, off the batch path, and the next micro-batch commits PI's answers; fresh
values keep flowing, and the status reports the backlog and its age.

Durable: a commit lets the write-ahead log drop the channel messages that named its late groups, so the groups
still waiting are written down (`<state_dir>/pending_groups.json`, fsync'd) before that commit, and a restart
resumes them. A group verified and committed but still in the file is verified again after a crash: the read is
authoritative and an identical row is dropped, so that costs a read, never a doubled value.
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pi_platform.streaming.gaps import durable_write
from pi_platform.streaming.state import read_json, write_json

PENDING_FILE = "pending_groups.json"


class PendingGroups:
    """(web_id, timestamp µs) groups to verify, each with when it was first seen, in that order."""

    def __init__(self, state_dir: Path, *, fsync: bool = True) -> None:
        self._path = state_dir / PENDING_FILE
        self._fsync = fsync
        saved = read_json(self._path) or {}
        self._groups: dict[tuple[str, int], float] = {(str(w), int(ts)): float(seen)
                                                      for (w, ts), seen in saved.get("groups", [])}
        self._dirty = False

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, groups: pd.MultiIndex, seen_at: float) -> None:
        """Queue `groups`; one already waiting keeps its place."""
        for key in zip(groups.get_level_values(0), groups.get_level_values(1).astype("int64"), strict=True):
            if key not in self._groups:
                self._groups[(str(key[0]), int(key[1]))] = seen_at
                self._dirty = True

    def oldest(self, n: int) -> pd.MultiIndex:
        """The `n` groups waiting longest (they stay queued until `discard`)."""
        keys = [key for key, _ in zip(self._groups, range(n))]
        return pd.MultiIndex.from_tuples(keys, names=["web_id", "ts"]) if keys else _empty()

    def discard(self, groups: pd.MultiIndex) -> None:
        """Forget groups whose verification was committed (written down with the next `save`)."""
        for key in zip(groups.get_level_values(0), groups.get_level_values(1).astype("int64"), strict=True):
            if self._groups.pop((str(key[0]), int(key[1])), None) is not None:
                self._dirty = True

    def drop_streams(self, web_ids: set[str]) -> int:
        """Forget every group of these streams (tags PI refuses: nothing to verify them against); how many."""
        gone = [key for key in self._groups if key[0] in web_ids]
        for key in gone:
            del self._groups[key]
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
    """How many late groups one verification round reads. Doubled after a round that used all of it while the
    collector was caught up (the oldest message waiting had waited no longer than the batch age allows, plus
    `slack_s`); cut when it is behind, at least by half and in proportion to how far behind (a batch that waited 8 s
    against a 1-s allowance divides it by 8, so one oversized batch is not followed by several), never below `low`:
    corrections take the time fresh values leave, and the backlog always drains once the storm passes. It grows only
    while used, so a storm after a quiet hour starts from what the last busy batch could afford, not from `high`."""

    low: int = 8
    high: int = 512
    slack_s: float = 0.5
    now: int = 32

    def next(self, behind_s: float, max_age_s: float, used: int) -> int:
        """This batch's budget, after a batch that verified `used` groups and found the oldest message waiting
        `behind_s`."""
        allowed = max_age_s + self.slack_s
        if behind_s > allowed:
            self.now = max(self.low, min(self.now // 2, int(self.now * allowed / behind_s)))
        elif used >= self.now:
            self.now = min(self.high, self.now * 2)
        return self.now


def _empty() -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([[], []], names=["web_id", "ts"])
