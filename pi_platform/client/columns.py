"""PI JSON value items -> Arrow columns in VALUE_SCHEMA, plus a rejects table for what cannot be a value.

This is the hot path of every extraction, so it works column by column: one list comprehension per field
over the dicts orjson already built, then pyarrow/numpy kernels (timestamp parsing, masks, takes). No
per-value Python objects beyond those comprehensions. A `Value` is a number, a string, or a digital state
`{Name, Value, IsSystem}`; each lands in its own column so nothing is cast away:

    number        -> value
    string        -> value_str
    digital state -> value (code, non-system only), value_str + digital_state (name), digital_code, is_system

Items with per-value `Errors`, an unreadable `Timestamp` or a `Value` of another shape go to the rejects
table (REJECT_SCHEMA) with the reason and the raw JSON: never silently dropped.

Items are orjson's dicts, or, for recorded pages that decoded typed (`recorded_json`), TimedValue structs:
the same fields read with `attrgetter`, and no per-value `Errors` or units to look for (a typed page has none).
"""

from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import attrgetter, contains, itemgetter

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.client.recorded_json import DigitalState, TimedValue
from pi_platform.value_columns import REJECT_SCHEMA, TIMESTAMP, VALUE_SCHEMA

_NS = pa.timestamp("ns", tz="UTC")
_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"
_NUMERIC = {float, int, bool, type(None)}
_TEXT = {str, type(None)}
_NUMBER, _STRING, _STATE, _OTHER = 0, 1, 2, 3  # kinds of a JSON Value (None counts as a number: null value)
_KIND = {float: _NUMBER, int: _NUMBER, bool: _NUMBER, type(None): _NUMBER, str: _STRING, dict: _STATE,
         DigitalState: _STATE}


@dataclass(frozen=True)
class ValueBatch:
    """One chunk of a recorded read: rows in VALUE_SCHEMA and the items PI returned that are not values."""

    values: pa.Table
    rejects: pa.Table

    @classmethod
    def empty(cls) -> "ValueBatch":
        return cls(VALUE_SCHEMA.empty_table(), REJECT_SCHEMA.empty_table())

    @classmethod
    def concat(cls, batches: "list[ValueBatch]") -> "ValueBatch":
        if not batches:
            return cls.empty()
        return cls(
            pa.concat_tables([b.values for b in batches]).combine_chunks(),
            pa.concat_tables([b.rejects for b in batches]).combine_chunks(),
        )


@dataclass(frozen=True)
class StreamPage:
    """The items of one stream in one response (already stripped of values a cursor had taken before).

    `carry_ts`/`carry_n`: last timestamp (µs) and how many values at it this stream produced in earlier
    pages, so `position` continues across a same-timestamp group split by a page boundary.
    """

    web_id: str
    name: str
    units: str | None
    items: list
    carry_ts: int | None = None
    carry_n: int = 0


@dataclass(frozen=True)
class PageTail:
    """Where a stream's rows ended: the value for the next page's `StreamPage.carry_ts/carry_n`."""

    ts: int | None
    n: int


def parse_timestamps(strings: list) -> tuple[pa.Array, np.ndarray | None]:
    """ISO 8601 `...Z` strings with 0-7 fractional digits -> timestamp[us, UTC] (truncated, never rounded up).

    Returns the array and a boolean mask of unparseable entries (None when all parsed). The fast path is
    one Arrow cast through nanoseconds; years outside 1677-2262 or junk fall back to a regex-checked path.
    """
    raw = pa.array(strings, pa.string())
    try:
        return pc.cast(pc.cast(raw, _NS), TIMESTAMP, safe=False), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    valid = pc.fill_null(pc.match_substring_regex(raw, _ISO), False)
    bad = ~valid.to_numpy(zero_copy_only=False)
    micro = pc.replace_substring_regex(pc.if_else(valid, raw, pa.scalar(None, pa.string())), r"(\.\d{6})\d+", r"\1")
    try:
        return pc.cast(micro, TIMESTAMP), (bad if bad.any() else None)
    except pa.ArrowInvalid:
        parsed = []
        for i, text in enumerate(micro.to_pylist()):
            try:
                parsed.append(None if text is None else pc.cast(pa.scalar(text), TIMESTAMP).value)
            except pa.ArrowInvalid:
                bad[i] = True
                parsed.append(None)
        return pa.array(parsed, pa.int64()).cast(TIMESTAMP), bad


def pluck(items: list, key: str, default: object = None) -> list:
    """One JSON field across items; `map(itemgetter)` runs in C, the `.get` fallback only if a key is missing."""
    try:
        return list(map(itemgetter(key), items))
    except KeyError:
        return [it.get(key, default) for it in items]
    except TypeError:  # an item that is not an object at all
        return [it.get(key, default) if type(it) is dict else None for it in items]


def attributes(items: list, key: str, default: object = None) -> list:
    """`pluck` for typed items (recorded_json structs): every field exists, its type already checked."""
    return list(map(attrgetter(key), items))


def pluck_bools(items: list, key: str, default: bool, get: Callable[..., list] = pluck) -> pa.Array:
    column = get(items, key, default)
    try:
        array = pa.array(column, pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # the vendor docs show "true" strings; tolerate them
        array = pa.array([v is True or (isinstance(v, str) and v.lower() == "true") for v in column], pa.bool_())
    return pc.fill_null(array, default) if array.null_count else array


def _split_values(values: list, get: Callable[..., list] = pluck) -> tuple[dict[str, pa.Array], np.ndarray | None]:
    """Route each JSON `Value` to its typed column; return the columns and a mask of unsupported shapes.

    Common pages are all numbers (or all strings) and take one Arrow conversion. Mixed pages (numbers with
    digital states, which every page spanning a digital tag is) classify each value by type with C-level
    `map`s into a numpy kind array, then convert the whole list once per column with the other kinds masked
    out (Arrow skips masked items unread), so no per-value Python loop runs.
    """
    n = len(values)
    kinds = set(map(type, values))
    nulls = {
        "value": pa.nulls(n, pa.float64()),
        "value_str": pa.nulls(n, pa.string()),
        "digital_state": pa.nulls(n, pa.string()),
        "digital_code": pa.nulls(n, pa.int32()),
        "is_system": pa.array(np.zeros(n, dtype=bool)),
    }
    if kinds <= _NUMERIC:
        return {**nulls, "value": pa.array(values, pa.float64())}, None
    if kinds <= _TEXT:
        return {**nulls, "value_str": pa.array(values, pa.string())}, None
    kind = np.fromiter(map(_KIND.get, map(type, values), repeat(_OTHER)), dtype=np.int8, count=n)
    state_idx = np.flatnonzero(kind == _STATE)
    states = list(map(values.__getitem__, state_idx.tolist()))
    if states and type(states[0]) is DigitalState:  # a typed page: every state has its Name
        named = np.ones(len(states), dtype=bool)
    else:
        named = np.fromiter(map(contains, states, repeat("Name")), dtype=bool, count=len(states))
    bad = kind == _OTHER
    bad[state_idx[~named]] = True
    columns = {**nulls, "value": pa.array(values, pa.float64(), mask=kind != _NUMBER)}
    if str in kinds:
        columns["value_str"] = pa.array(values, pa.string(), mask=kind != _STRING)
    if named.any():
        states_ok = list(compress(states, named))
        mask = np.zeros(n, dtype=bool)
        mask[state_idx[named]] = True
        arrow_mask = pa.array(mask)
        names = pa.array(get(states_ok, "Name"), pa.string())
        codes = pa.array(get(states_ok, "Value"), pa.int32())
        system = pc.fill_null(pa.array(get(states_ok, "IsSystem", False), pa.bool_()), False)
        columns["digital_state"] = pc.replace_with_mask(nulls["digital_state"], arrow_mask, names)
        columns["digital_code"] = pc.replace_with_mask(nulls["digital_code"], arrow_mask, codes)
        columns["is_system"] = pc.replace_with_mask(nulls["is_system"], arrow_mask, system)
        columns["value_str"] = pc.coalesce(columns["value_str"], columns["digital_state"])
        code_as_value = pc.if_else(columns["is_system"], pa.scalar(None, pa.float64()),
                                   columns["digital_code"].cast(pa.float64()))
        columns["value"] = pc.coalesce(columns["value"], code_as_value)
    return columns, (bad if bad.any() else None)


def _positions(ts: np.ndarray, stream: np.ndarray, pages: list[StreamPage]) -> tuple[np.ndarray, list[PageTail]]:
    """0-based order within each (stream, timestamp) run, continued from the previous page's carry."""
    n = len(ts)
    tails = [PageTail(p.carry_ts, p.carry_n) for p in pages]
    if n == 0:
        return np.zeros(0, dtype=np.int32), tails
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    np.not_equal(ts[1:], ts[:-1], out=new_run[1:])
    new_run[1:] |= stream[1:] != stream[:-1]
    starts = np.flatnonzero(new_run)
    run_id = np.cumsum(new_run) - 1
    position = np.arange(n, dtype=np.int64) - starts[run_id]
    bounds = np.searchsorted(stream, np.arange(len(pages) + 1))
    for s, page in enumerate(pages):
        lo, hi = bounds[s], bounds[s + 1]
        if lo == hi:
            continue
        first_run_end = starts[run_id[lo] + 1] if run_id[lo] + 1 < len(starts) else n
        first_run_end = min(first_run_end, hi)
        if page.carry_ts is not None and ts[lo] == page.carry_ts:
            position[lo:first_run_end] += page.carry_n
        last = ts[hi - 1]
        tail_n = int(position[hi - 1]) + 1
        tails[s] = PageTail(int(last), tail_n)
    return position.astype(np.int32), tails


def build_batch(pages: list[StreamPage], *, end_exclusive_us: int | None = None) -> tuple[ValueBatch, list[PageTail]]:
    """Columns for all streams' items at once (one set of Arrow calls per response, not per stream).

    `end_exclusive_us` drops rows at or after that time: windows of a long range share their boundary
    instant, which PI includes in both, so all but the last window leave it to the next.
    """
    lengths = np.fromiter((len(p.items) for p in pages), dtype=np.int64, count=len(pages))
    items = list(chain.from_iterable(p.items for p in pages))
    typed = bool(items) and isinstance(items[0], TimedValue)  # recorded_json's fast path: a whole page is typed
    get = attributes if typed else pluck
    stream = np.repeat(np.arange(len(pages)), lengths)
    web_ids = pa.array([p.web_id for p in pages], pa.string())
    names = pa.array([p.name for p in pages], pa.string())
    stream_units = pa.array([p.units for p in pages], pa.string())
    take = pa.array(stream)

    timestamps, bad_ts = parse_timestamps(get(items, "Timestamp"))
    value_columns, bad_value = _split_values(get(items, "Value"), get)
    has_errors = np.zeros(len(items), dtype=bool)
    if not typed and any(map(contains, items, repeat("Errors"))):
        has_errors[[i for i, it in enumerate(items) if it.get("Errors")]] = True
    reasons = _reject_reasons(has_errors, bad_ts, bad_value)

    per_value_units = typed and type(items[0]) is not TimedValue  # channel values carry theirs
    if items and not per_value_units and (typed or not any(map(contains, items, repeat("UnitsAbbreviation")))):
        units = stream_units.take(take)  # selectedFields left per-value units out: the stream's apply
    else:  # per-value units (dicts, or channel values), null or missing ones the stream's
        units = pa.array(get(items, "UnitsAbbreviation"), pa.string())
        if units.null_count:
            units = pc.coalesce(units, stream_units.take(take))
    columns = {
        "web_id": web_ids.take(take),
        "name": names.take(take),
        "timestamp": timestamps,
        **value_columns,
        "good": pluck_bools(items, "Good", True, get),
        "questionable": pluck_bools(items, "Questionable", False, get),
        "substituted": pluck_bools(items, "Substituted", False, get),
        "annotated": pluck_bools(items, "Annotated", False, get),
        "units": units,
    }
    ts_us = pc.fill_null(timestamps.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    in_window = None if end_exclusive_us is None else ts_us < end_exclusive_us
    # Positions count every item PI returned at a timestamp, rejected ones included, so a value's key
    # does not change when a neighbour's per-value error clears on a rerun.
    timed = in_window if bad_ts is None else (~bad_ts if in_window is None else in_window & ~bad_ts)
    if timed is None:
        position, tails = _positions(ts_us, stream, pages)
    else:
        position = np.zeros(len(items), dtype=np.int32)
        position[timed], tails = _positions(ts_us[timed], stream[timed], pages)
    columns["position"] = pa.array(position, pa.int32())
    mask = reasons == "" if reasons is not None else None
    if in_window is not None:
        if bad_ts is not None:
            in_window |= bad_ts  # no readable time: cannot belong to a later window, keep it here
        mask = in_window if mask is None else mask & in_window
    if mask is not None and not mask.all():
        selected = pa.array(np.flatnonzero(mask))
        columns = {k: v.take(selected) for k, v in columns.items()}
    values = pa.Table.from_arrays([columns[f.name] for f in VALUE_SCHEMA], schema=VALUE_SCHEMA)
    rejects = _rejects(items, reasons, stream, pages, in_window) if reasons is not None else REJECT_SCHEMA.empty_table()
    return ValueBatch(values, rejects), tails


def _reject_reasons(has_errors: np.ndarray, bad_ts: np.ndarray | None, bad_value: np.ndarray | None) -> np.ndarray | None:
    if not has_errors.any() and bad_ts is None and bad_value is None:
        return None
    reasons = np.full(len(has_errors), "", dtype=object)
    if bad_value is not None:
        reasons[bad_value] = "unsupported Value shape (expected number, string or {Name, Value, IsSystem})"
    if bad_ts is not None:
        reasons[bad_ts] = "unreadable Timestamp (expected ISO 8601 UTC ending in Z)"
    reasons[has_errors] = "PI reported per-value Errors"
    return reasons


def _rejects(items: list, reasons: np.ndarray, stream: np.ndarray, pages: list[StreamPage],
             in_window: np.ndarray | None) -> pa.Table:
    rows = np.flatnonzero(reasons != "")
    if in_window is not None:
        rows = rows[in_window[rows]]
    return pa.Table.from_pydict(
        {
            "web_id": [pages[stream[i]].web_id for i in rows],
            "name": [pages[stream[i]].name for i in rows],
            "reason": [_with_errors(reasons[i], items[i]) for i in rows],
            "raw": [_raw(items[i]) for i in rows],
            "timestamp": pa.nulls(len(rows), TIMESTAMP),
        },
        schema=REJECT_SCHEMA,
    )


def _raw(item: object) -> str:
    """An item's JSON for the rejects table (a typed one re-encoded: its fields as decoded)."""
    return (msgspec.json.encode(item) if isinstance(item, TimedValue) else orjson.dumps(item)).decode()


def _with_errors(reason: str, item: object) -> str:
    """Append PI's own per-value error text (PropertyError `{FieldName, Message: [...]}` or plain strings)."""
    found = item.get("Errors") if type(item) is dict else None
    if not found or not isinstance(found, list):
        return reason
    texts = []
    for error in found:
        if isinstance(error, dict):
            message = error.get("Message")
            text = "; ".join(map(str, message)) if isinstance(message, list) else str(message)
            texts.append(f"{error['FieldName']}: {text}" if error.get("FieldName") else text)
        else:
            texts.append(str(error))
    return f"{reason}: {' | '.join(texts)}"
