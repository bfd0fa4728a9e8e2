"""The deterministic plant: catalog + values + clock + pause windows + event frames, and the ground truth.

Tests and benchmarks compare what crosses the wire with what this object computes in-process, so every
public method here returns exactly what the HTTP/WebSocket layer would serve (`recorded` = GET
streams/{webId}/recorded with boundaryType=Inside and no maxCount limit).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from pi_platform import webid
from pi_platform.pitime import parse_time, to_us
from pi_platform.simulator.catalog import (
    DIGITAL_SETS,
    SYSTEM_STATES,
    Attribute,
    Catalog,
    Element,
    Point,
)
from pi_platform.simulator.clock import Clock
from pi_platform.simulator.values import (
    K_DIGITAL,
    K_STRING,
    K_SYSTEM,
    NEVER,
    STRING_LABELS,
    Block,
    ValueGenerator,
    as_of,
)
from pi_platform.value_columns import TIMESTAMP, VALUE_SCHEMA

if TYPE_CHECKING:
    from pi_platform.simulator.events import EventFrames


class ObjectNotFound(LookupError):
    """A well-formed WebID or path that names nothing in this plant (HTTP 404)."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"The specified object was not found: '{ref}'.")
        self.ref = ref


class NotAStream(ValueError):
    """An attribute with no PI Point data reference asked for time-series data (HTTP 409)."""


@dataclass(frozen=True)
class Stream:
    """A time series addressed by a WebID: a PI point, or an attribute whose data reference is that point."""

    web_id: str  # as requested (may be PathOnly / IDOnly)
    point: Point
    attribute: Attribute | None

    @property
    def name(self) -> str:
        return self.attribute.name if self.attribute else self.point.name

    @property
    def path(self) -> str:
        return self.attribute.path if self.attribute else self.point.path

    @property
    def canonical_web_id(self) -> str:
        return self.attribute.web_id if self.attribute else self.point.web_id

    @property
    def units(self) -> str:
        return self.point.units


# Labels for value_str / digital_state: string vocabulary, then digital set states, then system states.
def _label_table() -> tuple[list[str], dict[str, int], dict[int, int]]:
    labels = list(STRING_LABELS)
    set_offsets: dict[str, int] = {}
    for name, dset in DIGITAL_SETS.items():
        set_offsets[name] = len(labels)
        labels.extend(dset.states)
    system_index = {}
    for code, label in SYSTEM_STATES.items():
        system_index[code] = len(labels)
        labels.append(label)
    return labels, set_offsets, system_index


LABELS, SET_OFFSETS, SYSTEM_LABEL_INDEX = _label_table()
_LABELS_ARROW = pa.array(LABELS, pa.string())
_SYSTEM_LOOKUP = np.full(max(SYSTEM_STATES) + 1, -1, dtype=np.int64)
for _code, _index in SYSTEM_LABEL_INDEX.items():
    _SYSTEM_LOOKUP[_code] = _index


class Plant:
    """A synthetic PI System (one AF server/database, one data archive) computed from a seed."""

    def __init__(
        self,
        seed: int = 42,
        n_tags: int = 1000,
        values_per_minute: float = 1.0,
        *,
        edge_tags: bool = True,
        now: datetime | None = None,
        clock_offset: timedelta = timedelta(0),
        event_frames: bool = True,
        cache_buckets: int = 50_000,
    ) -> None:
        self.seed = seed
        self.n_tags = n_tags
        self.values_per_minute = values_per_minute
        self.catalog = Catalog(seed, n_tags, edge_tags=edge_tags)
        self.generator = ValueGenerator(self.catalog, values_per_minute, cache_buckets)
        self.clock = Clock(now, clock_offset)
        self.with_event_frames = event_frames
        # point index -> [(paused_after_us, resumed_at_us or NEVER)]: values with paused_after < ts <= resumed_at
        # never exist. Changing this is the only way the history of a tag depends on run-time state.
        self.pauses: dict[int, list[list[int]]] = {}

    # ---- names used across the project ----------------------------------------------------------------
    @property
    def data_server_name(self) -> str:
        return self.catalog.data_server_name

    @property
    def asset_server_name(self) -> str:
        return self.catalog.asset_server_name

    @property
    def database_name(self) -> str:
        return self.catalog.database_name

    @property
    def points(self) -> list[Point]:
        return self.catalog.points

    @property
    def elements(self) -> list[Element]:
        return self.catalog.elements

    @property
    def attributes(self) -> list[Attribute]:
        return [a for e in self.catalog.elements for a in e.attributes]

    def now(self) -> datetime:
        return self.clock.now()

    @cached_property
    def events(self) -> "EventFrames":
        from pi_platform.simulator.events import EventFrames  # events imports this module

        return EventFrames(self)

    # ---- lookups -----------------------------------------------------------------------------------------
    def lookup(self, web_id: str) -> tuple[str, object]:
        """Resolve any WebID (Full, IDOnly, PathOnly) to (kind, object); InvalidWebId / ObjectNotFound otherwise."""
        decoded = webid.decode(web_id)
        cat = self.catalog
        by_path = decoded.type == "P"
        path = decoded.path or ""
        marker = decoded.marker
        found: object = None
        if marker == "RS":
            ok = path.upper() == cat.asset_server_name.upper() if by_path else decoded.ids[0] == cat.asset_server_guid
            found = "assetserver" if ok else None
        elif marker == "RD":
            ok = (
                path.upper() == cat.database_path.lstrip("\\").upper()
                if by_path
                else decoded.ids[1] == cat.database_guid
            )
            found = "database" if ok else None
        elif marker == "DS":
            ok = path.upper() == cat.data_server_name.upper() if by_path else decoded.ids[0] == cat.data_server_guid
            found = "dataserver" if ok else None
        elif marker == "DP":
            if by_path:
                server, _, tag = path.partition("\\")
                found = cat.point_by_name(tag) if server.upper() == cat.data_server_name.upper() else None
            elif decoded.ids[0] == cat.data_server_guid:
                found = cat.point_by_id(decoded.point_id or 0)
        elif marker == "Em":
            found = cat.element_by_path(path) if by_path else cat.element_by_guid(decoded.ids[1])
        elif marker == "Ab" and decoded.owner == "E":
            if by_path:
                found = cat.attribute_by_path(path)
            else:
                element = cat.element_by_guid(decoded.ids[1])
                found = next((a for a in element.attributes if a.guid == decoded.ids[2]), None) if element else None
        elif marker == "MS" and decoded.owner == "D":
            if by_path:
                server, _, name = path.partition("\\")
                found = cat.enumeration_set_by_name(name) if server.upper() == cat.data_server_name.upper() else None
            else:
                found = cat.enumeration_set_by_guid(decoded.ids[1])
        elif marker in ("Fm", "Nr"):
            found = self.events.lookup(decoded)
        if found is None:
            raise ObjectNotFound(web_id)
        return decoded.kind, found

    def stream(self, web_id: str) -> Stream:
        kind, obj = self.lookup(web_id)
        if isinstance(obj, Point):
            return Stream(web_id, obj, None)
        if isinstance(obj, Attribute):
            if obj.point is None:
                raise NotAStream(f"The attribute '{obj.name}' has no data reference that supports time series data.")
            return Stream(web_id, obj.point, obj)
        raise NotAStream(f"The WebID '{web_id}' ({kind}) is not a stream (a PI point or attribute).")

    def point_by_webid(self, web_id: str) -> Point:
        return self.stream(web_id).point

    def point_by_name(self, name: str) -> Point:
        point = self.catalog.point_by_name(name)
        if point is None:
            raise ObjectNotFound(name)
        return point

    # ---- values --------------------------------------------------------------------------------------------
    def block(self, point: Point, start_us: int, end_us: int, now_us: int | None = None) -> Block:
        """Values of `point` in [start, end] as PI holds them at `now` (pauses and corrections applied)."""
        now_us = self.clock.now_us() if now_us is None else now_us
        end_us = min(end_us, now_us)
        if end_us < start_us:
            return self.generator.block(point, start_us, start_us - 1)
        block = as_of(self.generator.block(point, start_us, end_us), now_us)
        for paused_after, resumed_at in self.pauses.get(point.index, ()):
            keep = (block.ts <= paused_after) | (block.ts > resumed_at)
            if not keep.all():
                block = block.take(keep)
        return block

    def recorded(
        self, web_id: str, start: "datetime | str", end: "datetime | str", now: datetime | None = None
    ) -> pa.Table:
        """Ground truth of GET streams/{web_id}/recorded?boundaryType=Inside (all values, no maxCount)."""
        stream = self.stream(web_id)
        now_dt = now or self.clock.now()
        start_us = to_us(parse_time(start, now=now_dt))
        end_us = to_us(parse_time(end, now=now_dt))
        block = self.block(stream.point, start_us, end_us, to_us(now_dt))
        return block_to_table(block, stream)

    def pause(self, names: list[str], at: datetime | None = None) -> list[str]:
        """Stop producing values for these tags from `at` (default now) until resumed."""
        at_us = to_us(at) if at else self.clock.now_us()
        done = []
        for name in names:
            windows = self.pauses.setdefault(self.point_by_name(name).index, [])
            if not windows or windows[-1][1] != NEVER:
                windows.append([at_us, NEVER])
                done.append(name)
        return done

    def resume(self, names: list[str], at: datetime | None = None) -> list[str]:
        at_us = to_us(at) if at else self.clock.now_us()
        done = []
        for name in names:
            windows = self.pauses.get(self.point_by_name(name).index, [])
            if windows and windows[-1][1] == NEVER:
                windows[-1][1] = max(at_us, windows[-1][0])
                done.append(name)
        return done

    def paused(self) -> list[str]:
        return [self.catalog.points[i].name for i, w in self.pauses.items() if w and w[-1][1] == NEVER]


def label_indices(block: Block, point: Point) -> np.ndarray:
    """Index into LABELS of each value's state name / string (-1 for plain numbers)."""
    out = np.full(len(block), -1, dtype=np.int64)
    kind = block.kind
    strings = kind == K_STRING
    out[strings] = block.sidx[strings]
    digital = kind == K_DIGITAL
    if digital.any():
        out[digital] = SET_OFFSETS[point.digital_set] + block.code[digital]
    system = kind == K_SYSTEM
    if system.any():
        out[system] = _SYSTEM_LOOKUP[block.code[system]]
    return out


def block_to_table(block: Block, stream: Stream) -> pa.Table:
    """Arrow table in VALUE_SCHEMA, exactly what a correct client builds from the JSON of these values."""
    n = len(block)
    kind = block.kind
    labels = label_indices(block, stream.point)
    is_state = (kind == K_DIGITAL) | (kind == K_SYSTEM)
    system = kind == K_SYSTEM
    numeric_mask = (kind == K_STRING) | system
    label_arr = pa.array(labels, pa.int64(), mask=labels < 0)
    state_idx = pa.array(labels, pa.int64(), mask=~is_state)
    zeros = pa.array(np.zeros(n, dtype=np.int64))
    columns = [
        pa.array([stream.web_id], pa.string()).take(zeros),
        pa.array([stream.name], pa.string()).take(zeros),
        pa.array(block.ts, pa.int64()).cast(TIMESTAMP),
        pa.array(block.pos, pa.int32()),
        pa.array(block.num, pa.float64(), mask=numeric_mask),
        _LABELS_ARROW.take(label_arr),
        _LABELS_ARROW.take(state_idx),
        pa.array(block.code, pa.int32(), mask=~is_state),
        pa.array(system),
        pa.array(~system),
        pa.array(block.questionable),
        pa.array(block.substituted),
        pa.array(block.annotated),
        pa.array([stream.units], pa.string()).take(zeros),
    ]
    return pa.Table.from_arrays(columns, schema=VALUE_SCHEMA)
