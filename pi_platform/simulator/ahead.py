"""A channel's TimedValue JSON rendered ahead of time, for all its streams at once.

A channel poll covers half a second: a handful of values per stream. Generating and rendering them per
stream and poll cost a bucket lookup, a concat, an `as_of` and a JSON build each time (25-45 us of CPU per
value sent at 10,000 values/s, most of it per-call overhead). A stream whose archive is the generator's output
(`Plant.is_generated`) is a pure function of time, so its values are generated and rendered once per span
(about one generator bucket), before they are due, into one text for the whole channel; a poll then finds
every stream's range with one vectorised search and cuts one substring per stream. Each channel renders at
a lead of its own, so channels do not all render at the same poll.
"""

from dataclasses import dataclass

import numpy as np

from pi_platform.simulator import jsonfmt
from pi_platform.simulator.plant import Plant, Stream
from pi_platform.simulator.values import NEVER, Block, as_of

_ITEM_START = '{"Timestamp":'  # every TimedValue with all fields starts so, and nowhere else in one
_STREAM_SHIFT = 42  # key = stream index << 42 | microseconds into the segment (spans up to 50 days)
MAX_SPAN_US = 60_000_000


def items(array_text: str) -> list[str]:
    """The TimedValue objects of a `[...]` list as separate strings."""
    if array_text == "[]":
        return []
    first, *rest = array_text[1:-1].split("," + _ITEM_START)
    return [first, *(_ITEM_START + item for item in rest)]


def item_lengths(list_text: str) -> np.ndarray:
    """The length of each TimedValue object in the text of a list without its brackets."""
    parts = list_text.split("," + _ITEM_START)
    lengths = np.fromiter(map(len, parts), np.int64, len(parts))
    lengths[1:] += len(_ITEM_START)
    return lengths


def count_items(text: str) -> int:
    """How many TimedValue objects a piece of list text holds."""
    return text.count(_ITEM_START)


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
        return Corrections(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("stream", "ts", "due", "text")))


@dataclass(frozen=True)
class _Segment:
    """Values stamped in [start, end] of the streams generated when it was rendered: item k (in (stream,
    timestamp, position) order) is text[offsets[k]:offsets[k + 1] - 1] (all items joined by commas)."""

    start: int
    end: int
    key: np.ndarray  # int64, ascending: stream << _STREAM_SHIFT | ts - start
    text: str
    offsets: list[int]
    fixes: np.ndarray  # items whose value is corrected later
    corrections: Corrections  # of those items, in the same order


class ChannelAhead:
    """`take(last, now, generated)`: per stream (index), the text pieces of the values stamped in (last, now],
    and the corrections those values still have to come."""

    def __init__(self, plant: Plant, streams: list[Stream], covered_us: int, poll_us: int, phase: float) -> None:
        self.plant = plant
        self.streams = streams
        buckets = [plant.generator.profile(s.point).bucket_us for s in streams]
        self.span_us = max(4 * poll_us, min(max(buckets, default=MAX_SPAN_US), MAX_SPAN_US))
        self.lead_us = poll_us + int(phase * self.span_us)
        self._base = np.arange(len(streams), dtype=np.int64) << _STREAM_SHIFT
        self._segments: list[_Segment] = []
        self._covered = covered_us  # rendered up to here

    def take(self, last: int, now: int, generated: np.ndarray) -> tuple[dict[int, list[str]], Corrections]:
        """A value whose correction already happened (a late poll) is sent corrected, as `as_of` would."""
        if self._covered < now + self.lead_us:
            end = max(self._covered + self.span_us, now + self.lead_us)
            self._segments.append(self._render(max(self._covered, last) + 1, end, generated))
            self._covered = end
        changes: dict[int, list[str]] = {}
        later = []
        for segment in self._segments:
            if segment.end > last and segment.start <= now:
                later.append(self._slice(segment, last, now, generated, changes))
        self._segments = [s for s in self._segments if s.end > now]
        return changes, Corrections.concat(later) if later else Corrections.empty()

    def _slice(self, segment: _Segment, last: int, now: int, generated: np.ndarray,
               changes: dict[int, list[str]]) -> Corrections:
        lo_t, hi_t = max(last - segment.start, -1), min(now, segment.end) - segment.start
        lo = np.searchsorted(segment.key, self._base + lo_t, side="right")
        hi = np.searchsorted(segment.key, self._base + hi_t, side="right")
        fixed = segment.corrections
        sent = (fixed.ts > last) & (fixed.ts <= now) & generated[fixed.stream]
        late = sent & (fixed.due <= now)
        replaced = dict(zip(segment.fixes[late].tolist(), fixed.text[late].tolist()))
        rows = np.flatnonzero((hi > lo) & generated)
        text, offsets = segment.text, segment.offsets
        for index, a, b in zip(rows.tolist(), lo[rows].tolist(), hi[rows].tolist()):
            pieces = changes.setdefault(index, [])
            done = a
            for k in (sorted(k for k in replaced if a <= k < b) if replaced else ()):
                if k > done:
                    pieces.append(text[offsets[done]:offsets[k] - 1])
                pieces.append(replaced[k])
                done = k + 1
            if done < b:
                pieces.append(text[offsets[done]:offsets[b] - 1])
        return fixed.take(sent & ~late)

    def _render(self, start: int, end: int, generated: np.ndarray) -> _Segment:
        generator = self.plant.generator
        keys, lengths, texts, fixes, corrections = [], [], [], [], []
        count = 0
        for index in np.flatnonzero(generated).tolist():
            stream = self.streams[index]
            block = generator.block(stream.point, start, end)
            if not len(block):
                continue
            text = jsonfmt.timed_values(block, stream.point, stream.units)[1:-1]
            texts.append(text)
            lengths.append(item_lengths(text))
            keys.append(self._base[index] + (block.ts - start))
            fixed = np.flatnonzero(block.corr_at != NEVER)
            if len(fixed):
                fixes.append(fixed + count)
                corrections.append(corrected(stream, index, block.take(fixed)))
            count += len(block)
        offsets = np.zeros(count + 1, np.int64)
        if count:
            offsets[1:] = np.cumsum(np.concatenate(lengths) + 1)
        return _Segment(start, end, np.concatenate(keys) if keys else np.zeros(0, np.int64), ",".join(texts),
                        offsets.tolist(), np.concatenate(fixes) if fixes else np.zeros(0, np.int64),
                        Corrections.concat(corrections) if corrections else Corrections.empty())


def corrected(stream: Stream, index: int, block: Block) -> Corrections:
    """The values of `block` (each with a correction to come) with their text once corrected."""
    text = np.array(items(jsonfmt.timed_values(as_of(block, NEVER - 1), stream.point, stream.units)), dtype=object)
    return Corrections(np.full(len(block), index, np.int64), block.ts, block.corr_at, text)
