"""A channel's TimedValue JSON rendered ahead of time, for all its streams at once.

A channel poll covers a fraction of a second: a handful of values per stream. Generating and rendering them
per stream and poll cost a bucket lookup, a concat, an `as_of` and a JSON build each time (25-45 us of CPU
per value sent at 10,000 values/s, most of it per-call overhead). A stream whose archive is the generator's
output (`Plant.is_generated`) is a pure function of time, so its values are generated and rendered once per
span, before they are due, into one text for the whole channel; a poll then finds every stream's range with
one vectorised search and cuts one substring per stream. The span holds several generator buckets (about
SPAN_VALUES values per stream, one generator call and one JSON call each): with one bucket per span those
per-call costs came back as ~8 us per value at 50,000 values/s. Each channel renders at a lead of its own,
so channels do not all render at the same poll.
"""

from dataclasses import dataclass

import numpy as np

from pi_platform.simulator import jsonfmt
from pi_platform.simulator.plant import Plant, Stream
from pi_platform.simulator.values import HOUR_US, NEVER, Block, as_of

_ITEM_START = '{"Timestamp":'  # every TimedValue with all fields starts so, and nowhere else in one
_OPEN, _QUOTE, _T = (ord(c) for c in '{"T')  # `{"T` opens a TimedValue: in a string a `"` is escaped
_STREAM_SHIFT = 42  # key = stream index << 42 | microseconds into the segment (spans up to 50 days)
MAX_SPAN_US = 60_000_000
SPAN_VALUES = 1_000  # values per stream a span aims at: per-call costs spread thin, memory bounded


def items(array_text: str) -> list[str]:
    """The TimedValue objects of a `[...]` list as separate strings."""
    if array_text == "[]":
        return []
    first, *rest = array_text[1:-1].split("," + _ITEM_START)
    return [first, *(_ITEM_START + item for item in rest)]


def count_items(text: str) -> int:
    """How many TimedValue objects a piece of list text holds."""
    return text.count(_ITEM_START)


def item_starts(text: bytes) -> np.ndarray:
    """Where each TimedValue object of `text` (UTF-8 JSON) starts, in characters of the decoded text; one
    more entry, the text's length plus one, closes the last (as if a comma followed it)."""
    data = np.frombuffer(text, np.uint8)
    braces = np.flatnonzero(data == _OPEN)
    braces = braces[braces + 2 < len(data)]
    starts = braces[(data[braces + 1] == _QUOTE) & (data[braces + 2] == _T)]
    starts = np.append(starts, len(data) + 1)
    if not text.isascii():  # byte offsets to character offsets: drop the continuation bytes before each
        high = np.flatnonzero(data >= 0x80)  # few: units such as °C, some labels
        starts -= np.searchsorted(high[(data[high] & 0xC0) == 0x80], starts)
    return starts


@dataclass(frozen=True)
class Corrections:
    """Values already sent whose correction comes later (at `due`), and their text once corrected."""

    stream: np.ndarray  # int64 index into the channel's streams
    ts: np.ndarray
    due: np.ndarray
    text: np.ndarray  # object: str, or None where the plant must be read again when it is due

    @staticmethod
    def empty() -> "Corrections":
        return Corrections(*(np.zeros(0, np.int64) for _ in range(3)), np.zeros(0, object))

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, selector: np.ndarray) -> "Corrections":
        return Corrections(self.stream[selector], self.ts[selector], self.due[selector], self.text[selector])

    @staticmethod
    def concat(parts: "list[Corrections]") -> "Corrections":
        parts = [p for p in parts if len(p)] or parts[:1]
        if len(parts) == 1:
            return parts[0]
        return Corrections(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("stream", "ts", "due", "text")))


@dataclass(frozen=True)
class _Segment:
    """Values stamped in [start, end] of the streams generated when it was rendered: item k (in (stream,
    timestamp, position) order) is text[offsets[k]:offsets[k + 1] - 1] (all items joined by commas)."""

    start: int
    end: int
    key: np.ndarray  # int64, ascending: stream << _STREAM_SHIFT | ts - start
    text: str
    offsets: np.ndarray  # int64, one more than there are items
    fixes: np.ndarray  # items whose value is corrected later
    corrections: Corrections  # of those items, in the same order


class ChannelAhead:
    """`take(last, now, generated)`: per stream (index), the text pieces of the values stamped in (last, now],
    how many values they hold, and the corrections those values still have to come."""

    def __init__(self, plant: Plant, streams: list[Stream], covered_us: int, poll_us: int, phase: float) -> None:
        self.plant = plant
        self.streams = streams
        profiles = [plant.generator.profile(s.point) for s in streams]
        wanted = int(SPAN_VALUES * HOUR_US / max(max((p.instants_per_hour for p in profiles), default=0.0), 1.0))
        self.span_us = max(4 * poll_us, min(wanted, MAX_SPAN_US))
        # Spans end where the fastest streams' generator buckets end, so no bucket is generated twice.
        self._grid_us = min(min((p.bucket_us for p in profiles), default=1), self.span_us)
        self.lead_us = poll_us + int(phase * self.span_us)
        self._base = np.arange(len(streams), dtype=np.int64) << _STREAM_SHIFT
        self._segments: list[_Segment] = []
        self._covered = covered_us  # rendered up to here

    def ready(self, now: int) -> bool:
        """Whether a poll up to `now` only cuts text already rendered (no span to render first)."""
        return self._covered >= now + self.lead_us

    def take(self, last: int, now: int, generated: np.ndarray) -> tuple[dict[int, list[str]], int, Corrections]:
        """A value whose correction already happened (a late poll) is sent corrected, as `as_of` would."""
        if self._covered < now + self.lead_us:
            end = max(self._covered + self.span_us, now + self.lead_us)
            end += -(end + 1) % self._grid_us  # the last microsecond of a bucket
            self._segments.append(self._render(max(self._covered, last) + 1, end, generated))
            self._covered = end
        changes: dict[int, list[str]] = {}
        count = 0
        later = []
        for segment in self._segments:
            if segment.end > last and segment.start <= now:
                count += self._slice(segment, last, now, generated, changes, later)
        self._segments = [s for s in self._segments if s.end > now]
        return changes, count, Corrections.concat(later or [Corrections.empty()])

    def _slice(self, segment: _Segment, last: int, now: int, generated: np.ndarray,
               changes: dict[int, list[str]], later: list[Corrections]) -> int:
        """Adds the segment's pieces to `changes` and its corrections still to come to `later`; how many
        values the pieces hold."""
        lo_t, hi_t = max(last - segment.start, -1), min(now, segment.end) - segment.start
        lo = np.searchsorted(segment.key, self._base + lo_t, side="right")
        hi = np.searchsorted(segment.key, self._base + hi_t, side="right")
        rows = np.flatnonzero((hi > lo) & generated)
        if not len(rows):
            return 0
        lo, hi = lo[rows], hi[rows]
        fixed = segment.corrections
        if len(fixed):
            sent = (fixed.ts > last) & (fixed.ts <= now) & generated[fixed.stream]
            late = sent & (fixed.due <= now)
            replaced = dict(zip(segment.fixes[late].tolist(), fixed.text[late].tolist()))
            if sent.any():
                later.append(fixed.take(sent & ~late))
        else:
            replaced = {}
        text, offsets = segment.text, segment.offsets
        if not replaced:
            for index, a, b in zip(rows.tolist(), offsets[lo].tolist(), (offsets[hi] - 1).tolist()):
                changes.setdefault(index, []).append(text[a:b])
            return int((hi - lo).sum())
        for index, a, b in zip(rows.tolist(), lo.tolist(), hi.tolist()):
            pieces = changes.setdefault(index, [])
            done = a
            for k in sorted(k for k in replaced if a <= k < b):
                if k > done:
                    pieces.append(text[offsets[done]:offsets[k] - 1])
                pieces.append(replaced[k])
                done = k + 1
            if done < b:
                pieces.append(text[offsets[done]:offsets[b] - 1])
        return int((hi - lo).sum())

    def _render(self, start: int, end: int, generated: np.ndarray) -> _Segment:
        generator = self.plant.generator
        keys, texts, fixes, corrections = [], [], [], []
        count = 0
        indices = np.flatnonzero(generated).tolist()
        points = [self.streams[i].point for i in indices]
        blocks = generator.blocks(points, start, end)
        rendered = jsonfmt.timed_values_many(blocks, points, [self.streams[i].units for i in indices])
        for index, block, json in zip(indices, blocks, rendered):
            stream = self.streams[index]
            if not len(block):
                continue
            texts.append(json[1:-1])
            keys.append(self._base[index] + (block.ts - start))
            fixed = np.flatnonzero(block.corr_at != NEVER)
            if len(fixed):
                fixes.append(fixed + count)
                corrections.append(corrected(stream, index, block.take(fixed)))
            count += len(block)
        text = b",".join(texts)
        offsets = item_starts(text)
        assert len(offsets) == count + 1, "a TimedValue's text was not found where it starts"
        return _Segment(start, end, np.concatenate(keys) if keys else np.zeros(0, np.int64), text.decode(),
                        offsets, np.concatenate(fixes) if fixes else np.zeros(0, np.int64),
                        Corrections.concat(corrections or [Corrections.empty()]))


def corrected(stream: Stream, index: int, block: Block) -> Corrections:
    """The values of `block` (each with a correction to come) with their text once corrected."""
    text = np.array(items(jsonfmt.timed_values(as_of(block, NEVER - 1), stream.point, stream.units)), dtype=object)
    return Corrections(np.full(len(block), index, np.int64), block.ts, block.corr_at, text)
