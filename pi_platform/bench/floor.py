"""The parse floor: the least CPU any Python client must spend per value on the same payloads.

Real `streamsets/recorded` responses are captured from the simulator (same WebID groups and parameters
as the client sends), then timed in-process: orjson parse alone (through the client's `load_json`, GC paused
as in the client), and orjson parse + the same VALUE_SCHEMA
Arrow columns built by the leanest code we know (C-level `map(itemgetter)`, one Arrow conversion per
column, numpy for positions). `floor_table` is deliberately a reference, not production code: it handles
only well-formed single-page answers (what the sample holds), and `measure` checks that it builds exactly
the client's table, so the floor is never cheaper because it does less.

That orjson floor is issue 12's yardstick. The client itself no longer pays it: clean pages decode typed
(`client.recorded_json`, msgspec), so the typed parse alone is measured too, and `client_build` times the
client's real path (typed decode + `build_batch`).
"""

import time
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone
from itertools import chain
from operator import itemgetter
from urllib.parse import quote

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.client.columns import StreamPage, build_batch
from pi_platform.client.config import DEFAULT_PAGE_SIZE
from pi_platform.client.recorded import RECORDED_FIELDS, url_groups
from pi_platform.client.recorded_json import RecordedPage, decode_recorded
from pi_platform.client.transport import load_json
from pi_platform.pitime import format_time
from pi_platform.value_columns import TIMESTAMP, VALUE_SCHEMA, sort_values

_NS = pa.timestamp("ns", tz="UTC")
_NUMBER, _STRING, _STATE = 0, 1, 2
_KIND = {float: _NUMBER, int: _NUMBER, bool: _NUMBER, type(None): _NUMBER, str: _STRING, dict: _STATE}


@dataclass(frozen=True)
class FloorFigures:
    payloads: int
    payload_bytes: int
    values: int
    parse_s_per_value: float  # orjson.loads only
    floor_s_per_value: float  # orjson.loads + Arrow columns (the floor)
    typed_parse_s_per_value: float  # the client's typed decode only (recorded_json)
    client_build_s_per_value: float  # the client's decode + its own build_batch, same payloads

    def as_dict(self) -> dict:
        return {
            "payloads": self.payloads,
            "payload_bytes": self.payload_bytes,
            "values": self.values,
            "parse_us_per_value": self.parse_s_per_value * 1e6,
            "floor_us_per_value": self.floor_s_per_value * 1e6,
            "typed_parse_us_per_value": self.typed_parse_s_per_value * 1e6,
            "client_build_us_per_value": self.client_build_s_per_value * 1e6,
        }


def capture(base_url: str, web_ids: list[str], day: date, *, page_size: int = DEFAULT_PAGE_SIZE, max_url_length: int = 4096) -> list[bytes]:
    """Raw bodies of the streamsets/recorded requests the client makes for these tags and day."""
    start = datetime.combine(day, dtime(0), tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    bodies = []
    with httpx.Client(base_url=base_url + "/", timeout=120, headers={"Accept": "application/json"}) as http:
        for group in url_groups(web_ids, len(base_url) + 200 + len(quote(RECORDED_FIELDS)), max_url_length):
            params = [("webId", w) for w in group]
            params += [("startTime", format_time(start)), ("endTime", format_time(end)), ("maxCount", page_size),
                       ("boundaryType", "Inside"), ("selectedFields", RECORDED_FIELDS)]
            response = http.get("streamsets/recorded", params=params)
            response.raise_for_status()
            bodies.append(response.content)
    return bodies


def floor_table(payload: bytes) -> pa.Table:
    """VALUE_SCHEMA rows of one streamsets/recorded body, the leanest way."""
    streams = load_json(payload)["Items"]
    per_stream = [s["Items"] for s in streams]
    items = list(chain.from_iterable(per_stream))
    n = len(items)
    counts = np.fromiter(map(len, per_stream), np.int64, len(per_stream))
    stream = np.repeat(np.arange(len(per_stream)), counts)
    take = pa.array(stream)

    timestamps = pc.cast(pc.cast(pa.array(list(map(itemgetter("Timestamp"), items)), pa.string()), _NS), TIMESTAMP, safe=False)
    ts = timestamps.cast(pa.int64()).to_numpy()
    new_run = np.empty(n, dtype=bool)
    new_run[:1] = True
    new_run[1:] = (ts[1:] != ts[:-1]) | (stream[1:] != stream[:-1])
    starts = np.flatnonzero(new_run)
    position = np.arange(n) - starts[np.cumsum(new_run) - 1]

    raw = list(map(itemgetter("Value"), items))
    kind = np.fromiter(map(_KIND.__getitem__, map(type, raw)), np.int8, n)
    numbers, texts, names, codes = raw, [None] * n, [None] * n, [None] * n
    system = np.zeros(n, dtype=bool)
    if kind.any():
        numbers = raw.copy()
        for i in np.flatnonzero(kind == _STRING).tolist():
            texts[i], numbers[i] = raw[i], None
        for i in np.flatnonzero(kind == _STATE).tolist():
            state = raw[i]
            texts[i] = names[i] = state["Name"]
            codes[i] = state["Value"]
            system[i] = state["IsSystem"]
            numbers[i] = None if system[i] else state["Value"]
    columns = [
        pa.array([s["WebId"] for s in streams], pa.string()).take(take),
        pa.array([s["Name"] for s in streams], pa.string()).take(take),
        timestamps,
        pa.array(position, pa.int32()),
        pa.array(numbers, pa.float64()),
        pa.array(texts, pa.string()),
        pa.array(names, pa.string()),
        pa.array(codes, pa.int32()),
        pa.array(system),
        *(pa.array(list(map(itemgetter(flag), items)), pa.bool_()) for flag in ("Good", "Questionable", "Substituted", "Annotated")),
        pa.array([s["UnitsAbbreviation"] for s in streams], pa.string()).take(take),  # selectedFields: per stream
    ]
    return pa.Table.from_arrays(columns, schema=VALUE_SCHEMA)


def client_table(payload: bytes) -> pa.Table:
    """The same body through the client's own decoder and column builder (the typed path on clean pages)."""
    page = decode_recorded(payload)
    if not isinstance(page, RecordedPage):
        raise AssertionError("a captured simulator page did not fit the client's typed decoder")
    pages = [StreamPage(s.WebId, s.Name, s.UnitsAbbreviation, s.Items) for s in page.Items]
    return build_batch(pages)[0].values


def measure(payloads: list[bytes], *, repeats: int = 3) -> FloorFigures:
    """Best of `repeats` CPU times per value; raises if the floor's table differs from the client's."""
    floor_rows = pa.concat_tables([floor_table(p) for p in payloads])
    client_rows = pa.concat_tables([client_table(p) for p in payloads])
    if not sort_values(floor_rows).equals(sort_values(client_rows)):
        raise AssertionError("parse floor and client built different tables from the same payloads")
    values = floor_rows.num_rows
    return FloorFigures(
        payloads=len(payloads),
        payload_bytes=sum(map(len, payloads)),
        values=values,
        parse_s_per_value=_best(lambda: [load_json(p) for p in payloads], repeats) / values,
        floor_s_per_value=_best(lambda: [floor_table(p) for p in payloads], repeats) / values,
        typed_parse_s_per_value=_best(lambda: [decode_recorded(p) for p in payloads], repeats) / values,
        client_build_s_per_value=_best(lambda: [client_table(p) for p in payloads], repeats) / values,
    )


def _best(work, repeats: int) -> float:  # noqa: ANN001 - a zero-argument callable
    times = []
    for _ in range(repeats):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)
