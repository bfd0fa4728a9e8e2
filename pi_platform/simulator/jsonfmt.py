"""Fast JSON for value lists: TimedValue objects built as bytes from numpy columns.

Serialising a day of 100,000 tags one dict (or even one f-string) per value would make the simulator the
bottleneck of the benchmark it serves. Each field is instead a fixed-width bytes column (numpy `S`), padded
with NUL where a value's text is shorter (JSON never holds a raw NUL: orjson escapes it); the columns and the
constant texts between them become one record per value, and the body is those records with every NUL
dropped, in one numpy pass. Numbers keep orjson's shortest float text (one C call per block, cut at its
commas), timestamps come from tables (dates of the few distinct days, every second of a day, every
microsecond fraction), labels and flag suffixes from small per-set tables: no regex and no Python object per
value. Output is byte-for-byte what `orjson.dumps` of the equivalent dicts gives, in PI Web API's field order
(pi_platform_tests/simulator/test_sim_jsonfmt.py holds it to that).
"""

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import orjson

from pi_platform.pitime import format_time, from_us
from pi_platform.simulator.catalog import DIGITAL_SETS, INTEGER, Point
from pi_platform.simulator.plant import LABELS, label_indices
from pi_platform.simulator.values import K_DIGITAL, K_NUMBER, K_STRING, K_SYSTEM, Block

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
    """`.ffffff` of every microsecond count, trailing zeros dropped, empty for 0 (7 MB, built on first use)."""
    fraction = np.arange(1_000_000)
    out = np.zeros((1_000_000, 7), np.uint8)
    out[:, 0] = np.where(fraction != 0, ord("."), 0)
    scale = 1_000_000
    for col in range(1, 7):
        kept = fraction % scale != 0  # a non-zero digit at or after this one
        scale //= 10
        out[:, col] = np.where(kept, _DIGIT + fraction // scale % 10, 0)
    return out.view("S7").reshape(-1)


def _timestamp_parts(ts_us: np.ndarray) -> list[np.ndarray]:
    """`YYYY-MM-DD`, `THH:MM:SS` and (where some value has one) `.ffffff` per value, as PI Web API prints
    times (.NET `FFFFFFF`: trailing zeros of the fraction and the dot of a whole second left out); dates come
    from the few distinct days, the rest from tables."""
    day, us = np.divmod(ts_us.astype(np.int64), DAY_US)
    first, last = int(day.min()), int(day.max())
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


def _compress(parts: "list[bytes | np.ndarray]", n: int) -> tuple[bytes, np.ndarray]:
    """Constant texts and per-value `S` columns side by side, one record per value, run together with every
    NUL pad dropped; also the records (their fields' lengths say where each value's text sits)."""
    dtype = np.dtype([(f"f{i}", f"S{len(p)}" if isinstance(p, bytes) else p.dtype) for i, p in enumerate(parts)])
    records = np.empty(n, dtype)
    for i, part in enumerate(parts):
        records[f"f{i}"] = part
    raw = records.view(np.uint8)
    return raw[raw != 0].tobytes(), records


def timestamps(ts_us: np.ndarray) -> list[str]:
    """ISO strings with a Z as PI Web API prints them: whole seconds without a fraction, fractions without
    trailing zeros."""
    if len(ts_us) <= _FEW_STAMPS:
        return [format_time(from_us(t)) for t in ts_us.tolist()]
    text, _ = _compress([*_timestamp_parts(ts_us), b"Z\n"], len(ts_us))
    return text.decode().split("\n")[:-1]


@lru_cache(maxsize=None)
def _label_table(digital_set: str) -> np.ndarray:
    """JSON of every label as a value (strings quoted, digital/system states as {Name, Value, IsSystem}),
    as padded rows indexed like LABELS."""
    from pi_platform.simulator.plant import SET_OFFSETS, SYSTEM_LABEL_INDEX

    out = [orjson.dumps(label) for label in LABELS]
    if digital_set:
        base = SET_OFFSETS[digital_set]
        for code, state in enumerate(DIGITAL_SETS[digital_set].states):
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
    annotated) bit combination, as padded rows; with `lead`, a comma opens a fragment that has fields."""
    out = []
    for bits in range(16):
        flags = {"Good": bits & 1, "Questionable": bits & 2, "Substituted": bits & 4, "Annotated": bits & 8}
        parts = [
            f'"{name}":'.encode() + orjson.dumps(units if name == "UnitsAbbreviation" else bool(flags[name]))
            for name in _TAIL_FIELDS
            if name in fields
        ]
        out.append((b"," if lead and parts else b"") + b",".join(parts) + b"}")
    return _padded(out)


def _numbers(block: Block, point: Point) -> np.ndarray:
    """Each value's number (0 where it has none: labelled values get their text from the label table)."""
    if point.kind == INTEGER:
        return np.where(np.isnan(block.num), 0, block.num).astype(np.int64)
    return np.where(np.isnan(block.num), 0.0, block.num)


def _value_texts(block: Block, point: Point) -> np.ndarray:
    """The JSON text of each value's `Value` field as an `S` array: orjson's number text cut at its commas,
    labelled values (strings, digital and system states) from the point's label table."""
    text = np.frombuffer(orjson.dumps(_numbers(block, point), option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)[1:-1]
    ends = np.append(np.flatnonzero(text == _COMMA), len(text))
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    out = _windows(text, starts, ends - starts)
    kind = block.kind
    labelled = (kind == K_DIGITAL) | (kind == K_SYSTEM) | (kind == K_STRING)
    if labelled.any():
        table = _label_table(point.digital_set)
        out = out.astype(f"S{max(out.itemsize, table.itemsize)}")
        out[labelled] = table[label_indices(block, point)[labelled]]
    return out


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
    if n < SMALL_BLOCK:
        rows: list[bytes] | None = _small_rows(block, point, units, chosen)
        text = b""
    else:
        rows = None
        text, records = _records_text(block, point, units, chosen)
    special: dict[int, bytes] = {}
    if annotations is not None and (fields is None or "Annotations" in fields):
        marked = np.flatnonzero(block.annotated)
        for i, stamp in zip(marked.tolist(), timestamps(block.ts[marked])):
            special[i] = orjson.dumps(annotations(i, stamp))
    if errors is not None:
        marked = np.flatnonzero(errors)
        for i, stamp in zip(marked.tolist(), timestamps(block.ts[marked])):
            special[i] = _error_item(stamp, units, fields)
    if rows is None:
        if not special:
            return text
        # Rare (fault injection, associations): cut the text back into objects, without `[`, `,` and `]`.
        ends = np.cumsum(sum(np.char.str_len(records[name]) for name in records.dtype.names)).tolist()
        rows = [text[start + 1 : end] for start, end in zip([0, *ends[:-1]], ends)]
        rows[-1] = rows[-1][:-1]
    for i, extra in special.items():
        if errors is not None and errors[i]:
            rows[i] = extra
        else:  # annotations go last, inside the object
            rows[i] = rows[i][:-1] + (b"," if rows[i] != b"{}" else b"") + b'"Annotations":' + extra + b"}"
    return b"[" + b",".join(rows) + b"]"


def _records_text(block: Block, point: Point, units: str, chosen: tuple[str, ...]) -> tuple[bytes, np.ndarray]:
    """The list as one compressed run of records (see the module doc), and the records."""
    n = len(block)
    with_ts, with_value = "Timestamp" in chosen, "Value" in chosen
    # Each value opens with its separator (`[` for the first) and the last closes the list, so the compressed
    # records are the whole answer with no further copy.
    opening = np.full(n, b",{", dtype="S2")
    opening[0] = b"[{"
    closing = np.zeros(n, dtype="S1")
    closing[-1] = b"]"
    parts: list[bytes | np.ndarray] = [opening]
    if with_ts:
        parts += [b'"Timestamp":"', *_timestamp_parts(block.ts), b'Z"']
    if with_value:
        parts += [b',"Value":' if with_ts else b'"Value":', _value_texts(block, point)]
    tail_fields = tuple(f for f in _TAIL_FIELDS if f in chosen)
    parts += [_suffixes(units, tail_fields, with_ts or with_value)[flag_bits(block)], closing]
    return _compress(parts, n)


def _small_rows(block: Block, point: Point, units: str, chosen: tuple[str, ...]) -> list[bytes]:
    """Each value's object through `orjson.dumps` of its dict: below SMALL_BLOCK values (a channel push, one
    snapshot) numpy's per-call set-up would cost more than the values. Labelled values are the same label
    table's text, as orjson Fragments."""
    kinds = block.kind.tolist()
    labelled = any(k != K_NUMBER for k in kinds)
    labels = label_indices(block, point).tolist() if labelled else [-1] * len(kinds)
    table = _label_table(point.digital_set).tolist() if labelled else []
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
