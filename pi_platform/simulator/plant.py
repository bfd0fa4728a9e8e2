"""The deterministic plant: catalog + values + clock + failures + event frames, and the ground truth.

Tests and benchmarks compare what crosses the wire with what this object computes in-process, so every
public method here returns exactly what the HTTP/WebSocket layer would serve (`recorded` = GET
streams/{webId}/recorded with boundaryType=Inside and no maxCount limit, `snapshot` = GET streams/{webId}/value).
Two series per tag: the archive (recorded values, channels) and the exception events the snapshot follows;
they are the same for continuous tags and differ for flat ones (flat.py, compression.py).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, partial
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
from pi_platform.simulator.compression import Compression, compression_for
from pi_platform.simulator.edits import Edit, EditLog, action_for
from pi_platform.simulator.failures import DELETE, INTERFACE, SILENT, TAG, Failure, Failures, apply
from pi_platform.simulator.flat import FlatSeries
from pi_platform.simulator.values import (
    CORRECTION_RATE,
    K_DIGITAL,
    K_STRING,
    K_SYSTEM,
    STRING_LABELS,
    Block,
    ValueGenerator,
    as_of,
)
from pi_platform.value_columns import TIMESTAMP, VALUE_SCHEMA

if TYPE_CHECKING:
    from pi_platform.simulator.updates import UpdateMarkers
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
        flat_fraction: float = 0.0,
        failures: "list[dict] | tuple[dict, ...]" = (),
        correction_rate: float = CORRECTION_RATE,
    ) -> None:
        self.seed = seed
        self.n_tags = n_tags
        self.values_per_minute = values_per_minute
        self.catalog = Catalog(seed, n_tags, edge_tags=edge_tags, flat_fraction=flat_fraction)
        self.generator = ValueGenerator(self.catalog, values_per_minute, cache_buckets, correction_rate)
        self.flat = FlatSeries(seed)
        self.clock = Clock(now, clock_offset)
        self.with_event_frames = event_frames
        # Failure windows are the only way the history of a tag depends on run-time state.
        self.failure_log = Failures(self.catalog)
        self.edits = EditLog()  # operators' history edits: the other run-time change to history
        self._compression: dict[int, Compression] = {}
        start = self.clock.now()
        for spec in failures:
            self.failure_log.add(Failure.from_json(spec, start))

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
    def lookup(self, web_id: str, include_deleted: bool = False) -> tuple[str, object]:
        """Resolve any WebID (Full, IDOnly, PathOnly, LocalIDOnly, DefaultIDOnly) to (kind, object);
        InvalidWebId / ObjectNotFound otherwise."""
        cat = self.catalog
        decoded = webid.with_server(webid.decode(web_id), cat.asset_server_guid, cat.data_server_guid)
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
            found = None if found is not None and not include_deleted and self.is_deleted(found) else found
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

    def stream(self, web_id: str, include_deleted: bool = False) -> Stream:
        """The stream a WebID names; `include_deleted` lets ground truth read a deleted tag's past."""
        kind, obj = self.lookup(web_id, include_deleted)
        if isinstance(obj, Point):
            return Stream(web_id, obj, None)
        if isinstance(obj, Attribute):
            if obj.point is None:
                raise NotAStream(f"The attribute '{obj.name}' has no data reference that supports time series data.")
            if not include_deleted and self.is_deleted(obj.point):
                raise ObjectNotFound(obj.point.path)
            return Stream(web_id, obj.point, obj)
        raise NotAStream(f"The WebID '{web_id}' ({kind}) is not a stream (a PI point or attribute).")

    def point_by_webid(self, web_id: str) -> Point:
        return self.stream(web_id).point

    def point_by_name(self, name: str) -> Point:
        point = self.catalog.point_by_name(name)
        if point is None or self.is_deleted(point):
            raise ObjectNotFound(name)
        return point

    def is_deleted(self, point: Point) -> bool:
        """Deleted by now (a deletion scheduled for later leaves the point known until then)."""
        deleted_at = self.failure_log.deleted_at(point)
        return deleted_at is not None and deleted_at <= self.clock.now_us()

    def compression(self, point: Point) -> Compression:
        """The point's exception/compression attributes (what GET points/{webId}/attributes serves)."""
        found = self._compression.get(point.index)
        if found is None:
            rate = self.generator.profile(point).instants_per_hour
            found = self._compression[point.index] = compression_for(point, rate)
        return found

    # ---- values --------------------------------------------------------------------------------------------
    def block(self, point: Point, start_us: int, end_us: int, now_us: int | None = None) -> Block:
        """Archive events of `point` in [start, end] as PI holds them at `now` (failures, corrections applied)."""
        return self._events(point, start_us, end_us, now_us, archive=True)

    def exceptions(self, point: Point, start_us: int, end_us: int, now_us: int | None = None) -> Block:
        """Exception events (each was the snapshot for a while): the archive plus, for flat tags, the excmax grid."""
        return self._events(point, start_us, end_us, now_us, archive=False)

    def _events(self, point: Point, start_us: int, end_us: int, now_us: int | None, archive: bool) -> Block:
        now_us = self.clock.now_us() if now_us is None else now_us
        end_us = min(end_us, now_us)
        if end_us < start_us:
            return self.generator.block(point, start_us, start_us - 1)
        if point.flat:
            read = self.flat.archive if archive else self.flat.exceptions
            block = read(point, self.compression(point), start_us, end_us)
            resend = partial(self.flat.level_at, point)  # a restarted interface re-sends the level
        else:
            block, resend = as_of(self.generator.block(point, start_us, end_us), now_us), None
        block = apply(block, self.failure_log.windows(point), start_us, end_us, resend)
        return self.edits.apply(point, block, start_us, end_us, now_us)

    def is_generated(self, point: Point) -> bool:
        """Whether the archive is the generator's output as it stands (corrections aside): no flat series, no
        failure window, no edit; callers may then read the generator directly (channels render ahead of time)."""
        return not (point.flat or self.failure_log.windows(point) or self.edits.touches(point))

    def history_changes(self) -> int:
        """How many failures and edits were recorded so far: while it stays the same, so does `is_generated`."""
        return len(self.failure_log.all()) + self.edits.last_seq

    def any_between(self, point: Point, start_us: int, end_us: int, now_us: int) -> bool:
        """Whether the archive has an event in [start, end] (channel polls skip quiet streams cheaply)."""
        if not self.is_generated(point):
            return len(self.block(point, start_us, end_us, now_us)) > 0
        return self.generator.any_between(point, start_us, end_us)

    def snapshot_block(self, point: Point, now_us: int | None = None) -> Block:
        """The snapshot at `now`: the latest exception event (No Data if the tag has none in 30 days)."""
        from pi_platform.simulator import readers  # readers imports this module

        now_us = self.clock.now_us() if now_us is None else now_us
        block = readers.last_before(self, point, now_us, now_us, series=self.exceptions)
        return block if len(block) else readers.no_data(np.array([now_us], dtype=np.int64))

    def recorded(
        self, web_id: str, start: "datetime | str", end: "datetime | str", now: datetime | None = None
    ) -> pa.Table:
        """Ground truth of GET streams/{web_id}/recorded?boundaryType=Inside (all values, no maxCount); for a
        deleted tag, what was served before the deletion (its values stop at the deletion time)."""
        stream = self.stream(web_id, include_deleted=True)
        now_dt = now or self.clock.now()
        start_us = to_us(parse_time(start, now=now_dt))
        end_us = to_us(parse_time(end, now=now_dt))
        block = self.block(stream.point, start_us, end_us, to_us(now_dt))
        return block_to_table(block, stream)

    def snapshot(self, web_id: str, at: "datetime | str | None" = None) -> pa.Table:
        """Ground truth of GET streams/{web_id}/value (no time) when the clock reads `at` (default now)."""
        stream = self.stream(web_id, include_deleted=True)
        at_us = to_us(parse_time(at, now=self.clock.now())) if at is not None else self.clock.now_us()
        return block_to_table(self.snapshot_block(stream.point, at_us), stream)

    # ---- failures ------------------------------------------------------------------------------------------
    def failures(self) -> list[Failure]:
        """Every failure so far, scheduled or injected, with exact start and end (the ground truth of outages)."""
        return self.failure_log.all()

    def interfaces(self) -> dict[str, list[Point]]:
        """Pointsource -> its tags: an interface failure silences exactly these."""
        return self.catalog.interfaces

    def pause(self, names: list[str], at: datetime | None = None, mode: str = SILENT) -> list[str]:
        """Tags get stuck from `at` (default now) until resumed: no archive or snapshot events (a stuck tag)."""
        return [n for n in names if self.failure_log.add(Failure(TAG, self._name(n), mode, self._at(at)))]

    def resume(self, names: list[str], at: datetime | None = None) -> list[str]:
        return [n for n in names if self.failure_log.close(TAG, self._name(n), self._at(at))]

    def paused(self) -> list[str]:
        return [f.target for f in self.failure_log.all() if f.kind == TAG and f.is_open]

    def fail_interface(self, pointsource: str, at: datetime | None = None, mode: str = SILENT) -> bool:
        """Every tag of the interface stops at `at`; io_timeout writes I/O Timeout first. False if already down."""
        return self.failure_log.add(Failure(INTERFACE, pointsource, mode, self._at(at)))

    def restore_interface(self, pointsource: str, at: datetime | None = None) -> bool:
        return self.failure_log.close(INTERFACE, pointsource, self._at(at)) is not None

    def delete(self, names: list[str], at: datetime | None = None) -> list[str]:
        """Delete PI points at `at`: no values after it, and REST answers 404 for them from then on."""
        return [n for n in names if self.failure_log.add(Failure(DELETE, self._name(n), SILENT, self._at(at)))]

    @cached_property
    def updates(self) -> "UpdateMarkers":
        """The Stream Updates cache (markers), created with the first registration."""
        from pi_platform.simulator.updates import UpdateMarkers  # updates imports this module

        return UpdateMarkers(self)

    def edit(self, name: str, at: datetime, value: float | None) -> Edit:
        """An operator replaces the archived value(s) of tag `name` at `at` by `value` (inserts one where none
        stood), or deletes them (`value` None), now by the plant's clock; see `edits.py`."""
        point = self.point_by_name(name)
        at_us = to_us(at)
        action, reported = action_for(point, self.block(point, at_us, at_us), value)
        return self.edits.record(point, at_us, self.clock.now_us(), action, reported)

    def _at(self, at: datetime | None) -> int:
        return to_us(at) if at else self.clock.now_us()

    def _name(self, name: str) -> str:
        """The tag's exact name; unknown and already deleted tags raise ObjectNotFound."""
        return self.point_by_name(name).name


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
