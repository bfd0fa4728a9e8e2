"""The plant's structure: AF hierarchy, attributes, PI points and digital sets, all derived from (seed, size).

Everything is computed from indices, so a 100,000-tag plant costs a few tens of MB of small objects built
on first use, and every object has a stable GUID and WebID across runs with the same seed. Values live
in `values.py`; this module only says what exists and how it is named.

Layout (sizes are fixed fan-outs so paths are predictable in tests):
    \\\\PISIM-AF\\PISIM\\Site001\\Area0001\\Unit00001\\Pump00001|Flow  ->  \\\\PISIM\\Pump00001.Flow
Each equipment element has 5 PI Point attributes (one tag each) plus 2 static attributes; 4 equipment per
unit, 5 units per area, 5 areas per site. Edge-case tags (EDGE.*) live on the data server only.
Every area's tags are read by one interface (PI pointsource = the area's name, e.g. `Area0001`), so
"an interface fails" means a group of about 100 tags goes quiet together; EDGE.* tags have pointsource `EDGE`.
A `flat_fraction` of the regular numeric and digital tags are flat (setpoint-like: see flat.py).
"""

import hashlib
import math
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property

from pi_platform import webid
from pi_platform.simulator import hashrng

EQUIP_PER_UNIT = 4
UNITS_PER_AREA = 5
AREAS_PER_SITE = 5
SLOTS_PER_EQUIPMENT = 5

SITE, AREA, UNIT, EQUIP = 0, 1, 2, 3
_LEVEL_TEMPLATES = {SITE: "Site", AREA: "Area", UNIT: "Unit"}
_LEVEL_CATEGORIES = {SITE: ["Sites"], AREA: ["Areas"], UNIT: ["Process Units"]}

# Value kinds a tag produces (see values.py).
NUMERIC, INTEGER, DIGITAL, STRING = "numeric", "integer", "digital", "string"
EDGE_POINTSOURCE = "EDGE"
_SALT_FLAT = 7001


@dataclass(frozen=True)
class DigitalSet:
    name: str
    states: tuple[str, ...]  # state code = index
    weights: tuple[float, ...]  # how often each state is the current one

    @property
    def codes(self) -> range:
        return range(len(self.states))


DIGITAL_SETS: dict[str, DigitalSet] = {
    s.name: s
    for s in (
        DigitalSet("Modes", ("Stopped", "Running", "Tripped"), (0.15, 0.8, 0.05)),
        DigitalSet("TankState", ("Filling", "Holding", "Draining"), (0.35, 0.3, 0.35)),
        DigitalSet(
            "ReactorPhase", ("Idle", "Charge", "Heat", "React", "Cool", "Discharge"), (0.2, 0.1, 0.15, 0.3, 0.15, 0.1)
        ),
    )
}

# System digital states (PI "SYSTEM" set): code -> name. Values use the three most common ones.
SYSTEM_STATES: dict[int, str] = {
    238: "Scan Off",
    241: "Failed",
    246: "I/O Timeout",
    248: "No Data",
    253: "Pt Created",
    254: "Shutdown",
    255: "Bad Input",
}
# Pt Created (253) is written once, when a point is created, never mid-series, so values do not use it.
VALUE_SYSTEM_CODES = (254, 246, 255)

STRING_VOCABULARY = (
    "OK",
    "Sample taken",
    "Operator round done",
    "Check seal",
    "Batch A-17 started",
    "Batch A-17 complete",
    "Maintenance due",
    "Grade change",
)


@dataclass(frozen=True)
class EnumerationSetRef:
    """A digital state set of the data server, as WebID lookups return it."""

    name: str


@dataclass(frozen=True)
class SlotSpec:
    """One PI Point attribute of an equipment template."""

    name: str
    point_type: str  # Float32 | Float64 | Int32 | Digital | String
    units: str
    category: str
    digital_set: str = ""

    @property
    def kind(self) -> str:
        return {"Float32": NUMERIC, "Float64": NUMERIC, "Int32": INTEGER, "Digital": DIGITAL, "String": STRING}[
            self.point_type
        ]

    @property
    def attribute_type(self) -> str:
        return {
            "Float32": "Single",
            "Float64": "Double",
            "Int32": "Int32",
            "Digital": "EnumerationValue",
            "String": "String",
        }[self.point_type]


@dataclass(frozen=True)
class EquipmentTemplate:
    name: str
    categories: tuple[str, ...]
    slots: tuple[SlotSpec, ...]
    capacity_units: str


EQUIPMENT_TEMPLATES: tuple[EquipmentTemplate, ...] = (
    EquipmentTemplate(
        "Pump",
        ("Equipment", "Rotating Equipment"),
        (
            SlotSpec("Flow", "Float32", "m3/h", "Process Data"),
            SlotSpec("DischargePressure", "Float64", "bar", "Process Data"),
            SlotSpec("Speed", "Int32", "rpm", "Process Data"),
            SlotSpec("Mode", "Digital", "", "Status", "Modes"),
            SlotSpec("BearingTemperature", "Float32", "°C", "Condition"),
        ),
        "m3/h",
    ),
    EquipmentTemplate(
        "Compressor",
        ("Equipment", "Rotating Equipment"),
        (
            SlotSpec("SuctionPressure", "Float32", "bar", "Process Data"),
            SlotSpec("Power", "Float64", "kW", "Process Data"),
            SlotSpec("Vibration", "Float32", "mm/s", "Condition"),
            SlotSpec("Mode", "Digital", "", "Status", "Modes"),
            SlotSpec("RunHours", "Int32", "h", "Condition"),
        ),
        "kW",
    ),
    EquipmentTemplate(
        "Tank",
        ("Equipment", "Vessels"),
        (
            SlotSpec("Level", "Float32", "%", "Process Data"),
            SlotSpec("Temperature", "Float64", "°C", "Process Data"),
            SlotSpec("Volume", "Float64", "m3", "Process Data"),
            SlotSpec("State", "Digital", "", "Status", "TankState"),
            SlotSpec("LastSample", "String", "", "Lab"),
        ),
        "m3",
    ),
    EquipmentTemplate(
        "Reactor",
        ("Equipment", "Vessels"),
        (
            SlotSpec("Temperature", "Float64", "°C", "Process Data"),
            SlotSpec("Pressure", "Float32", "bar", "Process Data"),
            SlotSpec("AgitatorSpeed", "Int32", "rpm", "Process Data"),
            SlotSpec("Phase", "Digital", "", "Status", "ReactorPhase"),
            SlotSpec("BatchId", "String", "", "Lab"),
        ),
        "t",
    ),
)

MANUFACTURERS = ("Sulzer", "KSB", "Atlas Copco", "Grundfos", "Flowserve", "Siemens")


@dataclass(frozen=True)
class EdgeSpec:
    """A deterministic tag built to break naive paging (documented in README.md)."""

    name: str
    point_type: str
    description: str


EDGE_TAGS: tuple[EdgeSpec, ...] = (
    EdgeSpec("EDGE.SameTs", "Float64", "groups of 5-30 values sharing one timestamp, every ~2 minutes"),
    EdgeSpec(
        "EDGE.SystemRun",
        "Float32",
        "3 hours of system states only (1,800 values) then 1 hour of good values, repeating",
    ),
    EdgeSpec("EDGE.Dense", "Float64", "about one value per second (86,400 a day)"),
    EdgeSpec("EDGE.DigitalSystem", "Digital", "digital states interleaved with frequent system states"),
)


def stable_guid(seed: int, *parts: object) -> uuid.UUID:
    """GUIDs that are a pure function of the seed and the object's identity (stable WebIDs across runs)."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=16).digest()
    return uuid.UUID(bytes=digest)


@dataclass(eq=False)
class Point:
    index: int  # 0-based tag index (regular tags first, then edge tags)
    id: int  # PI point id (Int32 in the WebID)
    name: str
    point_type: str
    kind: str
    units: str
    digital_set: str
    descriptor: str
    zero: float
    span: float
    path: str  # \\PISIM\tag
    web_id: str
    pointsource: str  # the interface that reads it (one per area; EDGE for edge tags)
    edge: str = ""  # edge-case profile name, "" for regular tags
    flat: bool = False  # piecewise constant, archived only on change or compmax (flat.py)

    @property
    def step(self) -> bool:
        """Stepped (no interpolation between values): counters, states, strings, and flat setpoint-like tags."""
        return self.flat or self.kind in (INTEGER, DIGITAL, STRING)


@dataclass(eq=False)
class Attribute:
    element: "Element"
    number: int  # position within the element
    name: str
    attribute_type: str
    type_qualifier: str
    units: str
    categories: list[str]
    point: Point | None  # PI Point data reference
    static_value: object = None
    guid: uuid.UUID = field(default_factory=uuid.uuid4)
    web_id: str = ""

    @property
    def path(self) -> str:
        return f"{self.element.path}|{self.name}"


@dataclass(eq=False)
class Element:
    level: int
    index: int
    name: str
    template: str
    categories: list[str]
    parent: "Element | None"
    guid: uuid.UUID
    path: str = ""
    web_id: str = ""
    children: list["Element"] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)


class Catalog:
    """What exists in the plant, with lookups by name, path, id and GUID (built lazily, then cached)."""

    def __init__(
        self,
        seed: int,
        n_tags: int,
        *,
        edge_tags: bool = True,
        flat_fraction: float = 0.0,
        asset_server: str = "PISIM-AF",
        database: str = "PISIM",
        data_server: str = "PISIM",
    ) -> None:
        if n_tags < 1:
            raise ValueError("n_tags must be at least 1")
        if not 0.0 <= flat_fraction <= 1.0:
            raise ValueError(f"flat_fraction must be within 0..1 (got {flat_fraction})")
        self.seed = seed
        self.n_tags = n_tags
        self.with_edge_tags = edge_tags
        self.flat_fraction = flat_fraction
        self.asset_server_name = asset_server
        self.database_name = database
        self.data_server_name = data_server
        self.asset_server_guid = stable_guid(seed, "assetserver")
        self.database_guid = stable_guid(seed, "database")
        self.data_server_guid = stable_guid(seed, "dataserver")
        self.asset_server_web_id = webid.encode_full("RS", (self.asset_server_guid,), asset_server)
        self.database_path = f"\\\\{asset_server}\\{database}"
        self.database_web_id = webid.encode_full("RD", (self.asset_server_guid, self.database_guid), self.database_path)
        self.data_server_path = f"\\\\PIServers[{data_server}]"
        self.data_server_web_id = webid.encode_full("DS", (self.data_server_guid,), data_server)
        # Small cache for listing results (sorted scopes, name-filtered points) that paging re-reads.
        self.cache: OrderedDict[tuple, list] = OrderedDict()
        self._cache_lock = threading.Lock()

    def remember(self, key: tuple, value: list, limit: int = 64) -> None:
        with self._cache_lock:  # request handlers run in worker threads
            self.cache[key] = value
            if len(self.cache) > limit:
                self.cache.popitem(last=False)

    # ---- points -------------------------------------------------------------------------------------
    @cached_property
    def points(self) -> list[Point]:
        points = [self._regular_point(i) for i in range(self.n_tags)]
        if self.with_edge_tags:
            points += [self._edge_point(self.n_tags + k, spec) for k, spec in enumerate(EDGE_TAGS)]
        return points

    def _make_point(
        self,
        index: int,
        name: str,
        point_type: str,
        kind: str,
        units: str,
        digital_set: str,
        descriptor: str,
        zero: float,
        span: float,
        pointsource: str,
        edge: str = "",
        flat: bool = False,
    ) -> Point:
        pid = index + 1
        path = f"\\\\{self.data_server_name}\\{name}"
        web = webid.encode_full("DP", (self.data_server_guid,), f"{self.data_server_name}\\{name}", point_id=pid)
        return Point(
            index, pid, name, point_type, kind, units, digital_set, descriptor, zero, span, path, web, pointsource,
            edge, flat,
        )

    def _regular_point(self, index: int) -> Point:
        equip, slot = divmod(index, SLOTS_PER_EQUIPMENT)
        template = EQUIPMENT_TEMPLATES[equip % len(EQUIPMENT_TEMPLATES)]
        spec = template.slots[slot]
        equip_name = f"{template.name}{equip + 1:05d}"
        zero, span = self.signal_range(index, spec.kind, spec.digital_set)
        area = equip // (EQUIP_PER_UNIT * UNITS_PER_AREA)
        flat = spec.kind != STRING and hashrng.uniform1(self.seed, index, _SALT_FLAT) < self.flat_fraction
        return self._make_point(
            index,
            f"{equip_name}.{spec.name}",
            spec.point_type,
            spec.kind,
            spec.units,
            spec.digital_set,
            f"{template.name} {equip + 1} {spec.name}",
            zero,
            span,
            area_name(area),
            flat=flat,
        )

    def _edge_point(self, index: int, spec: EdgeSpec) -> Point:
        kind = DIGITAL if spec.point_type == "Digital" else NUMERIC
        digital_set = "Modes" if kind == DIGITAL else ""
        zero, span = self.signal_range(index, kind, digital_set)
        return self._make_point(
            index,
            spec.name,
            spec.point_type,
            kind,
            "",
            digital_set,
            spec.description,
            zero,
            span,
            EDGE_POINTSOURCE,
            edge=spec.name,
        )

    def signal_params(self, index: int) -> tuple[float, float, float, float]:
        """(base, amplitude, period_s, phase) of a numeric tag's signal; also fixes its zero and span."""
        h = hashlib.blake2b(repr((self.seed, "signal", index)).encode(), digest_size=16).digest()
        u = [b / 255.0 for b in h[:4]]
        base = round(10 + 490 * u[0], 1)
        amplitude = round(base * (0.05 + 0.2 * u[1]), 2)
        period = 1800 + 84600 * u[2]
        phase = 2 * math.pi * u[3]
        return base, amplitude, period, phase

    def signal_range(self, index: int, kind: str, digital_set: str) -> tuple[float, float]:
        if kind == DIGITAL:
            return 0.0, float(len(DIGITAL_SETS[digital_set].states) - 1)
        if kind == STRING:
            return 0.0, 0.0
        base, amplitude, _, _ = self.signal_params(index)
        return round(base - 2 * amplitude, 2), round(4 * amplitude, 2)

    @cached_property
    def interfaces(self) -> dict[str, list[Point]]:
        """Pointsource -> the points its interface reads, in interface-id order (`location1` = position + 1)."""
        groups: dict[str, list[Point]] = {}
        for point in self.points:
            groups.setdefault(point.pointsource, []).append(point)
        return groups

    def interface_id(self, pointsource: str) -> int:
        return list(self.interfaces).index(pointsource) + 1

    @cached_property
    def _point_by_name(self) -> dict[str, Point]:
        return {p.name.upper(): p for p in self.points}

    def point_by_name(self, name: str) -> Point | None:
        return self._point_by_name.get(name.upper())

    def point_by_id(self, point_id: int) -> Point | None:
        return self.points[point_id - 1] if 1 <= point_id <= len(self.points) else None

    @cached_property
    def points_by_name_order(self) -> list[Point]:
        """Listing order of dataservers/{id}/points (by name, case-insensitive, like the PI Data Archive)."""
        return sorted(self.points, key=lambda p: p.name.upper())

    # ---- AF hierarchy -------------------------------------------------------------------------------
    @cached_property
    def counts(self) -> dict[int, int]:
        equipment = math.ceil(self.n_tags / SLOTS_PER_EQUIPMENT)
        units = math.ceil(equipment / EQUIP_PER_UNIT)
        areas = math.ceil(units / UNITS_PER_AREA)
        sites = math.ceil(areas / AREAS_PER_SITE)
        return {SITE: sites, AREA: areas, UNIT: units, EQUIP: equipment}

    @cached_property
    def elements(self) -> list[Element]:
        """Every element, parents before children (sites, then areas, units, equipment)."""
        levels: dict[int, list[Element]] = {}
        fanout = {AREA: AREAS_PER_SITE, UNIT: UNITS_PER_AREA, EQUIP: EQUIP_PER_UNIT}
        width = {SITE: 3, UNIT: 5}
        for level in (SITE, AREA, UNIT, EQUIP):
            items = []
            for i in range(self.counts[level]):
                parent = levels[level - 1][i // fanout[level]] if level != SITE else None
                if level == EQUIP:
                    template = EQUIPMENT_TEMPLATES[i % len(EQUIPMENT_TEMPLATES)]
                    name, template_name, categories = (
                        f"{template.name}{i + 1:05d}",
                        template.name,
                        list(template.categories),
                    )
                elif level == AREA:
                    template_name, name = _LEVEL_TEMPLATES[level], area_name(i)
                    categories = list(_LEVEL_CATEGORIES[level])
                else:
                    template_name = _LEVEL_TEMPLATES[level]
                    name, categories = f"{template_name}{i + 1:0{width[level]}d}", list(_LEVEL_CATEGORIES[level])
                element = Element(
                    level, i, name, template_name, categories, parent, stable_guid(self.seed, "element", level, i)
                )
                element.path = f"{parent.path if parent else self.database_path}\\{name}"
                element.web_id = webid.encode_full("Em", (self.asset_server_guid, element.guid), element.path)
                if parent is not None:
                    parent.children.append(element)
                self._add_attributes(element)
                items.append(element)
            levels[level] = items
        return [e for level in (SITE, AREA, UNIT, EQUIP) for e in levels[level]]

    def _add_attributes(self, element: Element) -> None:
        specs: list[tuple[str, str, str, str, list[str], Point | None, object]] = []
        if element.level == EQUIP:
            template = EQUIPMENT_TEMPLATES[element.index % len(EQUIPMENT_TEMPLATES)]
            for slot, spec in enumerate(template.slots):
                index = element.index * SLOTS_PER_EQUIPMENT + slot
                if index < self.n_tags:
                    specs.append(
                        (
                            spec.name,
                            spec.attribute_type,
                            spec.digital_set,
                            spec.units,
                            [spec.category],
                            self.points[index],
                            None,
                        )
                    )
            maker = MANUFACTURERS[(element.index * 7 + self.seed) % len(MANUFACTURERS)]
            specs.append(("Manufacturer", "String", "", "", ["Nameplate"], None, maker))
            capacity = float(50 + (element.index * 37 + self.seed) % 950)
            specs.append(("RatedCapacity", "Double", "", template.capacity_units, ["Nameplate"], None, capacity))
        elif element.level == SITE:
            specs.append(("Location", "String", "", "", ["Nameplate"], None, f"Plant site {element.index + 1}"))
        elif element.level == UNIT:
            specs.append(("Capacity", "Double", "", "t/h", ["Nameplate"], None, float(100 + element.index % 400)))
        for number, (name, attr_type, qualifier, units, categories, point, static) in enumerate(specs):
            attribute = Attribute(
                element,
                number,
                name,
                attr_type,
                qualifier,
                units,
                categories,
                point,
                static,
                guid=stable_guid(self.seed, "attribute", element.level, element.index, number),
            )
            attribute.web_id = webid.encode_full(
                "Ab", (self.asset_server_guid, element.guid, attribute.guid), attribute.path, owner="E"
            )
            element.attributes.append(attribute)

    @cached_property
    def roots(self) -> list[Element]:
        return [e for e in self.elements if e.level == SITE]

    @cached_property
    def _element_by_guid(self) -> dict[uuid.UUID, Element]:
        return {e.guid: e for e in self.elements}

    @cached_property
    def _element_by_path(self) -> dict[str, Element]:
        return {e.path.lstrip("\\").upper(): e for e in self.elements}

    def element_by_guid(self, guid: uuid.UUID) -> Element | None:
        return self._element_by_guid.get(guid)

    def element_by_path(self, path: str) -> Element | None:
        return self._element_by_path.get(path.lstrip("\\").upper())

    def attribute_by_path(self, path: str) -> Attribute | None:
        element_path, _, name = path.rpartition("|")
        element = self.element_by_path(element_path)
        if element is None:
            return None
        return next((a for a in element.attributes if a.name.upper() == name.upper()), None)

    # ---- digital sets ---------------------------------------------------------------------------------
    def enumeration_set_guid(self, name: str) -> uuid.UUID:
        return stable_guid(self.seed, "enumset", name)

    def enumeration_set_web_id(self, name: str) -> str:
        return webid.encode_full(
            "MS",
            (self.data_server_guid, self.enumeration_set_guid(name)),
            f"{self.data_server_name}\\{name}",
            owner="D",
        )

    def enumeration_set_by_guid(self, guid: uuid.UUID) -> EnumerationSetRef | None:
        name = next((n for n in [*DIGITAL_SETS, "SYSTEM"] if self.enumeration_set_guid(n) == guid), None)
        return EnumerationSetRef(name) if name else None

    def enumeration_set_by_name(self, name: str) -> EnumerationSetRef | None:
        found = next((n for n in [*DIGITAL_SETS, "SYSTEM"] if n.upper() == name.upper()), None)
        return EnumerationSetRef(found) if found else None

    def enumeration_states(self, name: str) -> list[tuple[str, int]]:
        if name == "SYSTEM":
            return [(label, code) for code, label in sorted(SYSTEM_STATES.items())]
        return [(label, code) for code, label in enumerate(DIGITAL_SETS[name].states)]


def area_name(area: int) -> str:
    """Name of the area element, which is also the pointsource of the interface reading its tags."""
    return f"Area{area + 1:04d}"


def descendants(roots: list[Element]) -> list[Element]:
    """`roots` and everything below them, depth first, each parent before its children."""
    out: list[Element] = []
    stack = list(reversed(roots))
    while stack:
        element = stack.pop()
        out.append(element)
        stack.extend(reversed(element.children))
    return out


def wildcard(pattern: str | None) -> "re.Pattern[str] | None":
    """PI name filters: `*` any run, `?` one character, case-insensitive; None/''/'*' match everything."""
    if not pattern or pattern == "*":
        return None
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL)
