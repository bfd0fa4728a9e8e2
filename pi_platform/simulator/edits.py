"""History edits: an operator replaces, inserts or deletes an archived value after the fact.

PI lets operators correct the archive (PI DataLink, PI Vision, AF SDK `UpdateValue` with Replace/Insert/Remove),
long after a day was read. The edit log is the second way (after failures) the history of a tag depends on
run-time state, and it is applied to every series the plant serves, so `plant.recorded` stays the exact ground
truth and Stream Updates (`updates.py`) can report each edit with the action PI would give it.

An edit is visible from the moment it was made (`made_us`, the plant's clock), so a frozen clock sees it at
once and reading "as of" an earlier time does not. A replaced or inserted value is a plain number flagged
Substituted (PI's "the value was corrected after it was first written"); it takes the place of every value the
archive held at that timestamp. A deletion removes them all.
"""

import threading
from dataclasses import dataclass

import numpy as np

from pi_platform.simulator.catalog import Point
from pi_platform.simulator.values import K_NUMBER, NEVER, Block

ADD, UPDATE, DELETE = "Add", "Update", "Delete"  # PI's AFDataPipeAction names, as Stream Updates spell them


class EditError(ValueError):
    """An edit PI would refuse (say what to change)."""


@dataclass(frozen=True)
class Edit:
    seq: int  # order of the edits on this server (Stream Updates markers count these)
    point_index: int
    ts_us: int
    made_us: int
    action: str  # ADD (nothing stood there), UPDATE (replaced), DELETE
    value: float | None  # the new value; the old one for DELETE (what PI reports with the event)


class EditLog:
    """Every edit so far, per point, in the order made (later edits of one timestamp win)."""

    def __init__(self) -> None:
        self._all: list[Edit] = []
        self._by_point: dict[int, list[Edit]] = {}
        self._lock = threading.Lock()  # the server thread and in-process ground truth share it

    def record(self, point: Point, ts_us: int, made_us: int, action: str, value: float | None) -> Edit:
        with self._lock:
            edit = Edit(len(self._all) + 1, point.index, ts_us, made_us, action, value)
            self._all.append(edit)
            self._by_point.setdefault(point.index, []).append(edit)
            return edit

    def touches(self, point: Point) -> bool:
        return point.index in self._by_point

    @property
    def last_seq(self) -> int:
        return len(self._all)

    def since(self, point: Point, seq: int, now_us: int) -> list[Edit]:
        """Edits of `point` after `seq` that are visible at `now_us`."""
        return [e for e in self._by_point.get(point.index, ()) if e.seq > seq and e.made_us <= now_us]

    def apply(self, point: Point, block: Block, start_us: int, end_us: int, now_us: int) -> Block:
        """The block as PI holds it at `now_us` after the edits of [start, end] made by then."""
        edits = self._by_point.get(point.index)
        if not edits:
            return block
        final: dict[int, Edit] = {}
        for edit in edits:
            if edit.made_us <= now_us and start_us <= edit.ts_us <= end_us:
                final[edit.ts_us] = edit
        if not final:
            return block
        stamps = np.fromiter(final, dtype=np.int64, count=len(final))
        kept = block.take(~np.isin(block.ts, stamps))
        written = sorted(e.ts_us for e in final.values() if e.action != DELETE)
        if not written:
            return kept
        values = np.array([final[t].value for t in written], dtype=np.float64)
        merged = Block.concat([kept, numbers_block(np.array(written, dtype=np.int64), values)])
        return merged.take(np.argsort(merged.ts, kind="stable"))  # each written time stands alone: position 0


def numbers_block(ts: np.ndarray, values: np.ndarray) -> Block:
    """Plain numbers flagged Substituted (what an operator typed over the archive)."""
    n = len(ts)
    no = np.zeros(n, bool)
    return Block(
        ts, np.zeros(n, np.int32), np.full(n, K_NUMBER, np.uint8), values, np.full(n, -1, np.int32),
        np.full(n, -1, np.int32), no, no.copy(), np.ones(n, bool), np.full(n, NEVER, np.int64),
        values.copy(), np.full(n, -1, np.int32), np.full(n, -1, np.int32),
    )


def action_for(point: Point, before: Block, value: float | None) -> tuple[str, float | None]:
    """(action, value to report) of an edit at one timestamp, given what the archive held there (`before`)."""
    if point.point_type not in ("Float32", "Float64", "Int32"):
        raise EditError(f"{point.name} is a {point.point_type} point: edits take numeric points only")
    if value is None:
        if not len(before):
            raise EditError(f"{point.name} has no value at that time to delete")
        return DELETE, float(before.num[0])
    return (UPDATE if len(before) else ADD), float(value)
