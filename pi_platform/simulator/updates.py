"""Stream Updates: a marker per registered stream, and the data pipe events since a marker.

PI Web API's polling alternative to channels: `POST streams/{webId}/updates` (or `streamsets/updates`)
registers a stream and answers its `LatestMarker`; `GET streams/updates/{marker}` (or `streamsets/updates?
marker=..`) returns the events since that marker and a new `LatestMarker`. Events carry PI's AFDataPipeAction:
`Add` for every value newly archived (live data, and an inserted historical value), `Update` for a replaced
value, `Delete` for a removed one (with the value that was removed). Markers live in the server's update cache;
one the server does not know (it restarted, or the cache dropped it) must be answered by registering again,
which is what the reference says PI's own clients do.

A marker remembers the stream, the edit log position and the clock when it was issued, so what it returns is
a pure function of the plant: live values in (issued, now], edits made since.
"""

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from pi_platform.simulator.edits import ADD, Edit, numbers_block
from pi_platform.simulator.plant import Plant, Stream
from pi_platform.simulator.values import Block

MAX_MARKERS = 200_000  # the update cache: oldest markers are forgotten first (the client re-registers)


class UnknownMarker(LookupError):
    """A marker this server never issued or no longer holds."""


@dataclass(frozen=True)
class Mark:
    stream: Stream
    seq: int  # edit log position when issued
    time_us: int  # clock when issued


@dataclass(frozen=True)
class Changes:
    """The events of one stream since a marker: newly archived values, then edits in the order made."""

    fresh: Block
    edits: list[Edit]
    latest: str

    def blocks(self) -> list[tuple[str, Block]]:
        """(action, one-value block) per event, in event order (the JSON layer renders each value)."""
        out = [(ADD, self.fresh.take(slice(i, i + 1))) for i in range(len(self.fresh))]
        for edit in self.edits:
            out.append((edit.action, numbers_block(np.array([edit.ts_us], np.int64), np.array([edit.value], float))))
        return out


class UpdateMarkers:
    """The server's update cache: marker -> where the stream stood when the marker was issued."""

    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self._prefix = uuid.uuid4().hex  # a restarted server knows none of its predecessor's markers
        self._marks: OrderedDict[str, Mark] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def register(self, stream: Stream) -> str:
        return self._issue(Mark(stream, self.plant.edits.last_seq, self.plant.clock.now_us()))

    def changes(self, marker: str) -> tuple[Stream, Changes]:
        with self._lock:
            mark = self._marks.get(marker)
        if mark is None:
            raise UnknownMarker(marker)
        now_us = self.plant.clock.now_us()
        seq = self.plant.edits.last_seq
        fresh = self.plant.block(mark.stream.point, mark.time_us + 1, now_us, now_us)
        edits = self.plant.edits.since(mark.stream.point, mark.seq, now_us)
        latest = self._issue(Mark(mark.stream, seq, now_us))
        return mark.stream, Changes(fresh, edits, latest)

    def _issue(self, mark: Mark) -> str:
        with self._lock:
            self._count += 1
            marker = f"{self._prefix}_{self._count}"
            self._marks[marker] = mark
            while len(self._marks) > MAX_MARKERS:
                self._marks.popitem(last=False)
            return marker
