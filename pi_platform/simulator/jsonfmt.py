"""Fast JSON for value lists: TimedValue objects built as bytes from numpy columns.

Serialising a day of 100,000 tags one dict (or even one f-string) per value would make the simulator the
bottleneck of the benchmark it serves. Each field is instead a fixed-width bytes column (numpy `S`), padded
with NUL where a value's text is shorter (JSON never holds a raw NUL: orjson escapes it); the columns and the
constant texts between them become one record per value, and the body is those records with every NUL
dropped, in one numpy pass. Numbers keep orjson's shortest float text (one C call per block, cut at its
commas), timestamps come from tables (dates of the few distinct days, every second of a day, every
microsecond fraction), labels and flag suffixes from small tables: no regex and no Python object per value.
A stream set's lists formatted alike share one pass (the pass's fixed set-up is paid per kind of tag, not per
list), cut apart at a control byte ending each list; the few labels among numbers (system states) are spliced
in at another, so the value column keeps the numbers' width. Output is byte-for-byte what `orjson.dumps` of
the equivalent dicts gives, in PI Web API's field order (pi_platform_tests/simulator/test_sim_jsonfmt.py holds
it to that).
"""

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import orjson

from pi_platform.pitime import format_time, from_us
from pi_platform.simulator.catalog import DIGITAL_SETS, INTEGER, Point
from pi_platform.simulator.plant import LABELS, label_indices
from pi_platform.simulator.values import K_NUMBER, K_SYSTEM, Block

DAY_US = 86_400_000_000
_DIGIT = 48  # ord("0")
_COMMA = 44  # ord(",")
_FEW_STAMPS = 8  # up to this many, datetime formatting (~4 us each) is cheaper than the tables' set-up


def _padded(texts: "list[bytes]") -> np.ndarray:
    """Byte strings as a fixed-width bytes array, NUL-padded (numpy's `S` dtype): a lookup table of parts."""
    return np.array(texts, dtype=f"S{max(max((len(t) for t in texts), default=0), 1)}")


def _windows(text: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The pieces `text[start:start+length]` as a NUL-padded `S` array: each row one copy of the widest piece's
    width out of an overlapping view, then the bytes past each piece's end zeroed."""
    width = max(int(lengths.max()), 1)
    padded = np.append(text, np.zeros(width, np.uint8))
    view = np.lib.stride_tricks.as_strided(padded, shape=(len(text) + 1, width), strides=(1, 1))
    out = view[starts]
    out *= np.arange(width, dtype=np.int64)[None, :] < lengths[:, None]
    return out.view(f"S{width}").reshape(-1)


@lru_cache(maxsize=1)
def _clock_table() -> np.ndarray:
    """`HH:MM:SS` of every second of a day."""
    seconds = np.arange(86_400)
    digits = np.stack([seconds // 36000, seconds // 3600 % 10, seconds // 600 % 6, seconds // 60 % 10,
                       seconds // 10 % 6, seconds % 10], axis=1).astype(np.uint8) + _DIGIT
    out = np.full((86_400, 8), ord(":"), np.uint8)
    out[:, [0, 1, 3, 4, 6, 7]] = digits
    return out.view("S8").reshape(-1)


@lru_cache(maxsize=1)
def _fraction_table() -> np.ndarray:
    """`.ffffff` of every microsecond count, trailing zeros dropped, empty for 0 (7 MB, built on first use
    from the thousand 3-digit groups: ms digits then us digits, the us group's trailing zeros dropped, and the
    ms group's too where the us group is 000; a few ms, inside the first request a simulator serves)."""
    group = np.arange(1000)
    digits = np.stack([group // 100, group // 10 % 10, group % 10], axis=1).astype(np.uint8) + _DIGIT
    stripped = digits.copy()
    stripped[:, 2] *= group % 10 != 0
    stripped[:, 1] *= group % 100 != 0
    stripped[:, 0] *= group != 0
    out = np.empty((1000, 1000, 7), np.uint8)
    out[:, :, 0] = ord(".")
    out[:, :, 1:4] = digits[:, None, :]
    out[:, :, 4:7] = stripped[None, :, :]
    out[:, 0, 1:4] = stripped
    out[0, 0, 0] = 0
    return out.reshape(-1, 7).view("S7").reshape(-1)


def _timestamp_parts(ts_us: np.ndarray) -> "list[bytes | np.ndarray]":
    """`YYYY-MM-DD`, `THH:MM:SS` and (where some value has one) `.ffffff` per value, as PI Web API prints
    times (.NET `FFFFFFF`: trailing zeros of the fraction and the dot of a whole second left out); dates come
    from the few distinct days (a constant when there is one, as in most of a day's read), the rest from
    tables."""
    ts_us = ts_us.astype(np.int64, copy=False)
    first, last = int(ts_us.min()) // DAY_US, int(ts_us.max()) // DAY_US
    if first == last:
        dates: bytes | np.ndarray = str(np.datetime64(first, "D")).encode() + b"T"
        us = ts_us - first * DAY_US
    else:
        day, us = np.divmod(ts_us, DAY_US)
        if last - first < 64:  # a list spans a few days: index a table of them (no sort)
            days, index = np.arange(first, last + 1), day - first
        else:
            days, index = np.unique(day, return_inverse=True)
        dates = _padded([str(d).encode() + b"T" for d in days.astype("datetime64[D]")])[index.reshape(-1)]
    seconds, fraction = np.divmod(us, 1_000_000)
    parts = [dates, _clock_table()[seconds]]
    if fraction.any():
        parts.append(_fraction_table()[fraction])
    return parts


def _compress(parts: "list[bytes | np.ndarray]", n: int) -> np.ndarray:
    """Constant texts and per-value `S` columns side by side, one record per value, run together with every
    NUL pad dropped (as uint8, for the caller to patch). Adjacent constants share one field: each field is a
    strided copy per value."""
    merged: list[bytes | np.ndarray] = []
    for part in parts:
        if isinstance(part, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += part
        else:
            merged.append(part)
    dtype = np.dtype([(f"f{i}", f"S{len(p)}" if isinstance(p, bytes) else p.dtype) for i, p in enumerate(merged)])
    records = np.empty(n, dtype)
    for i, part in enumerate(merged):
        records[f"f{i}"] = part
    raw = records.view(np.uint8)
    return raw[raw != 0]


def timestamps(ts_us: np.ndarray) -> list[str]:
    """ISO strings with a Z as PI Web API prints them: whole seconds without a fraction, fractions without
    trailing zeros."""
    if len(ts_us) <= _FEW_STAMPS:
        return [format_time(from_us(t)) for t in ts_us.tolist()]
    text = _compress([*_timestamp_parts(ts_us), b"Z\n"], len(ts_us))
    return text.tobytes().decode().split("\n")[:-1]


@lru_cache(maxsize=1)
def _label_table() -> np.ndarray:
    """JSON of every label as a value (strings quoted, digital/system states as {Name, Value, IsSystem}),
    as padded rows indexed like LABELS (each digital set has its own rows, so one table serves every tag)."""
    from pi_platform.simulator.plant import SET_OFFSETS, SYSTEM_LABEL_INDEX

    out = [orjson.dumps(label) for label in LABELS]
    for name, base in SET_OFFSETS.items():
        for code, state in enumerate(DIGITAL_SETS[name].states):
            out[base + code] = orjson.dumps({"Name": state, "Value": code, "IsSystem": False})
    for code, index in SYSTEM_LABEL_INDEX.items():
        out[index] = orjson.dumps({"Name": LABELS[index], "Value": code, "IsSystem": True})
    return _padded(out)


# TimedValue fields in the order PI Web API writes them (`Errors`/`Annotations` only where they apply).
TIMED_VALUE_FIELDS = ("Timestamp", "Value", "UnitsAbbreviation", "Good", "Questionable", "Substituted", "Annotated")
_TAIL_FIELDS = TIMED_VALUE_FIELDS[2:]
# Below this many values, dicts through orjson beat the records' fixed numpy set-up (~150 us; crossover ~90).
SMALL_BLOCK = 96


@lru_cache(maxsize=256)
def _suffixes(units: str, fields: tuple[str, ...], lead: bool) -> np.ndarray:
    """Closing fragment (units and flags among `fields`, then `}`) for each (good, questionable, substituted,
    annotated) bit combination, as padded rows; with `lead`, a comma opens a fragment that has fields. Rows
    16-31 are the same for a list's last value, its `}` replaced by _END (as wide: `}]` goes in when cut)."""
    out = []
    for bits in range(16):
        flags = {"Good": bits & 1, "Questionable": bits & 2, "Substituted": bits & 4, "Annotated": bits & 8}
        parts = [
            f'"{name}":'.encode() + orjson.dumps(units if name == "UnitsAbbreviation" else bool(flags[name]))
            for name in _TAIL_FIELDS
            if name in fields
        ]
        out.append((b"," if lead and parts else b"") + b",".join(parts) + b"}")
    return _padded(out + [row[:-1] + _END for row in out])


def _numbers(block: Block, point: Point) -> np.ndarray:
    """Each value's number (0 where it has none: labelled values get their text from the label table)."""
    if point.kind == INTEGER:
        return np.where(np.isnan(block.num), 0, block.num).astype(np.int64)
    return np.where(np.isnan(block.num), 0.0, block.num)


# Stands in a value list's text for a label spliced in afterwards (JSON text never holds a raw control byte).
_MARK = b"\x01"


def _value_texts(block: Block, point: Point) -> tuple[np.ndarray, list[bytes]]:
    """The JSON text of each value's `Value` field as an `S` array: orjson's number text cut at its commas,
    labelled values (strings, digital and system states) from the point's label table. Where only a few are
    labelled (system states among numbers), the column keeps the numbers' width: those few hold _MARK and
    their texts come second, in order, for `_cut`."""
    kind = block.kind
    labelled = kind != K_NUMBER
    if labelled.all():
        return _label_table()[label_indices(block, point)], []
    text = np.frombuffer(orjson.dumps(_numbers(block, point), option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)[1:-1]
    ends = np.append(np.flatnonzero(text == _COMMA), len(text))
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    out = _windows(text, starts, ends - starts)
    if not labelled.any():
        return out, []
    out[labelled] = _MARK
    labels = _label_table()[label_indices(block, point)[labelled]]
    return out, labels.tolist()


def flag_bits(block: Block) -> np.ndarray:
    good = block.kind != K_SYSTEM
    return (
        good.astype(np.int64)
        | (block.questionable.astype(np.int64) << 1)
        | (block.substituted.astype(np.int64) << 2)
        | (block.annotated.astype(np.int64) << 3)
    )


def timed_values_json(
    block: Block,
    point: Point,
    units: str,
    errors: np.ndarray | None = None,
    annotations: "Callable[[int, str], list[dict]] | None" = None,
    fields: tuple[str, ...] | None = None,
) -> bytes:
    """`[TimedValue, ...]` for the block. `errors` marks values to replace with a per-value Errors item;
    `annotations(index, timestamp)` gives the `Annotations` of annotated values (associations=Annotations);
    `fields` (selectedFields) renders only those TimedValue fields — skipping the work for the others,
    rather than building then filtering."""
    n = len(block)
    if n == 0:
        return b"[]"
    chosen = TIMED_VALUE_FIELDS if fields is None else fields
    special: dict[int, bytes] = {}
    if annotations is not None and (fields is None or "Annotations" in fields):
        marked = np.flatnonzero(block.annotated)
        for i, stamp in zip(marked.tolist(), timestamps(block.ts[marked])):
            special[i] = orjson.dumps(annotations(i, stamp))
    if errors is not None:
        marked = np.flatnonzero(errors)
        for i, stamp in zip(marked.tolist(), timestamps(block.ts[marked])):
            special[i] = _error_item(stamp, units, fields)
    if n >= SMALL_BLOCK and not special:
        return _records_texts([block], point, units, chosen)[0]
    # Small lists, and the rare lists with errors or annotations (fault injection, associations): per value.
    rows = _small_rows(block, point, units, chosen)
    for i, extra in special.items():
        if errors is not None and errors[i]:
            rows[i] = extra
        else:  # annotations go last, inside the object
            rows[i] = rows[i][:-1] + (b"," if rows[i] != b"{}" else b"") + b'"Annotations":' + extra + b"}"
    return b"[" + b",".join(rows) + b"]"


def timed_values_many(
    blocks: list[Block], points: list[Point], units: list[str], fields: tuple[str, ...] | None = None
) -> list[bytes]:
    """`timed_values_json` of several lists (no errors, no annotations), in one numpy pass per kind of tag
    among them rather than one per list: a stream set's ~50 lists of ~1,400 values would otherwise pay the
    pass's fixed set-up ~50 times. Lists whose values are formatted alike (number type, labels, units when
    rendered) share a pass."""
    chosen = TIMED_VALUE_FIELDS if fields is None else fields
    out = [b"[]"] * len(blocks)
    groups: dict[tuple, list[int]] = {}
    for i, (block, point) in enumerate(zip(blocks, points)):
        if len(block):
            unit = units[i] if "UnitsAbbreviation" in chosen else ""
            groups.setdefault((point.kind, point.digital_set, unit), []).append(i)
    for (_, _, unit), members in groups.items():
        group = [blocks[i] for i in members]
        if sum(len(block) for block in group) < SMALL_BLOCK:
            texts = [timed_values_json(block, points[i], unit, fields=chosen) for block, i in zip(group, members)]
        else:
            texts = _records_texts(group, points[members[0]], unit, chosen)
        for i, text in zip(members, texts):
            out[i] = text
    return out


# Stands for the `}` that ends a list's last value, marking where the list ends in a run of several.
_END = b"\x02"


def _records_texts(blocks: list[Block], point: Point, units: str, chosen: tuple[str, ...]) -> list[bytes]:
    """Lists of values formatted alike (`point` stands for all of their points) as one compressed run of
    records (see the module doc), cut into one text per list."""
    block = Block.concat(blocks)
    n = len(block)
    with_ts, with_value = "Timestamp" in chosen, "Value" in chosen
    # Each value opens with `,{` (a list's first comma becomes `[` below) and a list's last value's suffix
    # closes the list and marks its end, so the compressed records are the answers, run together.
    parts: list[bytes | np.ndarray] = [b",{"]
    if with_ts:
        parts += [b'"Timestamp":"', *_timestamp_parts(block.ts), b'Z"']
    labels: list[bytes] = []
    if with_value:
        texts, labels = _value_texts(block, point)
        parts += [b',"Value":' if with_ts else b'"Value":', texts]
    tail_fields = tuple(f for f in _TAIL_FIELDS if f in chosen)
    bits = flag_bits(block)
    bits[np.cumsum([len(b) for b in blocks]) - 1] += 16
    parts.append(_suffixes(units, tail_fields, with_ts or with_value)[bits])
    return _cut(_compress(parts, n).tobytes(), len(blocks), labels)


def _cut(text: bytes, lists: int, labels: list[bytes]) -> list[bytes]:
    """The `lists` texts run together in `text` (each opens with the comma that becomes its `[` and ends with
    _END, which becomes `}]`), each _MARK replaced by the next of `labels`. The few marks are found with
    bytes.find (memchr)."""
    view = memoryview(text)
    out, start, k = [], 0, 0
    mark = text.find(_MARK) if labels else -1
    for _ in range(lists):
        end = text.find(_END, start)
        pieces: list[bytes | memoryview] = [b"["]
        start += 1
        while 0 <= mark < end:
            pieces += [view[start:mark], labels[k]]
            start, k = mark + 1, k + 1
            mark = text.find(_MARK, start)
        pieces += [view[start:end], b"}]"]
        out.append(b"".join(pieces))
        start = end + 1
    return out


def _small_rows(block: Block, point: Point, units: str, chosen: tuple[str, ...]) -> list[bytes]:
    """Each value's object through `orjson.dumps` of its dict: below SMALL_BLOCK values (a channel push, one
    snapshot) numpy's per-call set-up would cost more than the values. Labelled values are the same label
    table's text, as orjson Fragments."""
    kinds = block.kind.tolist()
    labelled = any(k != K_NUMBER for k in kinds)
    labels = label_indices(block, point).tolist() if labelled else [-1] * len(kinds)
    table = _label_table().tolist() if labelled else []
    numbers = _numbers(block, point).tolist()
    stamps = timestamps(block.ts) if "Timestamp" in chosen else labels
    flags = zip(block.questionable.tolist(), block.substituted.tolist(), block.annotated.tolist())
    kept = [name for name in TIMED_VALUE_FIELDS if name in chosen]
    every = len(kept) == len(TIMED_VALUE_FIELDS)
    rows = []
    for stamp, number, label, kind, (questionable, substituted, annotated) in zip(
        stamps, numbers, labels, kinds, flags
    ):
        item = {
            "Timestamp": stamp,
            "Value": orjson.Fragment(table[label]) if label >= 0 else number,
            "UnitsAbbreviation": units,
            "Good": kind != K_SYSTEM,
            "Questionable": questionable,
            "Substituted": substituted,
            "Annotated": annotated,
        }
        rows.append(orjson.dumps(item if every else {name: item[name] for name in kept}))
    return rows


def _error_item(stamp: str, units: str, fields: tuple[str, ...] | None) -> bytes:
    """A value PI could not read: Value null and a per-value Errors item."""
    item = {
        "Timestamp": stamp,
        "Value": None,
        "UnitsAbbreviation": units,
        "Good": False,
        "Questionable": False,
        "Substituted": False,
        "Annotated": False,
        "Errors": [{"FieldName": "Value", "Message": ["Failed to read the value from the data archive."]}],
    }
    return orjson.dumps({k: v for k, v in item.items() if fields is None or k in fields})


def timed_values(block: Block, point: Point, units: str) -> str:
    """`timed_values_json` (all fields) as text, for callers that build their JSON with f-strings (channels)."""
    return timed_values_json(block, point, units).decode()


def timed_value(block: Block, point: Point, units: str, fields: tuple[str, ...] | None = None) -> str:
    """A single TimedValue object (block of length 1)."""
    return timed_values_json(block, point, units, fields=fields).decode()[1:-1]
