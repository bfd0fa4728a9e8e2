"""Alarm-like event frames, deterministic per UTC day, plus notification rules.

Each day exercises every alarm KPI: background alarms on equipment (mostly minutes long; at least one
standing more than 24 h and one spanning midnight), chattering bursts (short frames on one element, starts
at most 25 s apart, so any three fall within 60 s), one more burst that starts just before midnight and
ends after it, one flood (15-30 alarms inside one aligned ten-minute window), never-acknowledged alarms,
one acknowledgement stamped before its alarm started (PI clocks drift), and downtime frames that cannot be
acknowledged. The 13th of every month is a quiet day (the plant's monthly alarm-system maintenance): no
alarm starts on it, only downtime frames and alarms raised earlier still run into it.

As of `now`: frames that have not started do not exist, frames not yet ended are open, acknowledgements
and annotations exist once their time has passed. PI's placeholders are rendered as PI renders them: open
frames end at 9999-12-31T23:59:59Z, never-acknowledged ones carry AcknowledgedDate 1970-01-01T00:00:00Z.
That makes ISA-18.2 KPIs checkable against `EventFrames.frames(...)`.
"""

import struct
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING

from pi_platform import webid
from pi_platform.pitime import from_us, to_us
from pi_platform.simulator import hashrng
from pi_platform.simulator.catalog import EQUIP, Element, stable_guid

if TYPE_CHECKING:
    from pi_platform.simulator.plant import Plant

DAY_US = 86_400_000_000
OPEN_END = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
OPEN_END_TEXT = "9999-12-31T23:59:59Z"
NEVER_ACK_TEXT = "1970-01-01T00:00:00Z"
SEVERITIES = ("None", "Information", "Warning", "Minor", "Major", "Critical")
OPERATORS = ("PISIM\\operator1", "PISIM\\operator2", "PISIM\\operator3")
QUIET_DAY_OF_MONTH = 13


@dataclass(frozen=True)
class FrameTemplate:
    name: str
    severities: tuple[str, ...]
    can_be_acknowledged: bool
    category: str


TEMPLATES: tuple[FrameTemplate, ...] = (
    FrameTemplate("HighAlarm", ("Minor", "Major"), True, "Alarm"),
    FrameTemplate("LowAlarm", ("Warning", "Minor"), True, "Alarm"),
    FrameTemplate("TripAlarm", ("Critical",), True, "Alarm"),
    FrameTemplate("DeviationAlarm", ("Information", "Warning"), True, "Alarm"),
    FrameTemplate("Downtime", ("None",), False, "Downtime"),
)


@dataclass
class Annotation:
    id: uuid.UUID
    name: str
    value: str
    creator: str
    created_us: int


@dataclass
class EventFrame:
    """One frame as generated (times in microseconds); `at(now)` gives the view PI serves at `now`."""

    day: int
    index: int
    guid: uuid.UUID
    name: str
    template: FrameTemplate
    severity: str
    element: Element
    start_us: int
    end_us: int
    ack_us: int | None  # when acknowledged (None = never)
    ack_by: str
    annotations: list[Annotation] = field(default_factory=list)
    kind: str = "background"  # background | standing | chattering | flood | downtime

    @property
    def start(self) -> datetime:
        return from_us(self.start_us)

    def is_open(self, now_us: int) -> bool:
        return self.end_us > now_us

    def end(self, now_us: int) -> datetime:
        return OPEN_END if self.is_open(now_us) else from_us(self.end_us)

    def is_acknowledged(self, now_us: int) -> bool:
        return self.ack_us is not None and self.ack_us <= now_us

    def annotations_at(self, now_us: int) -> list[Annotation]:
        return [a for a in self.annotations if a.created_us <= now_us]


class EventFrames:
    def __init__(self, plant: "Plant") -> None:
        self.plant = plant
        self.catalog = plant.catalog
        self.seed = plant.seed
        self._days: OrderedDict[int, list[EventFrame]] = OrderedDict()
        self._lock = threading.Lock()

    @cached_property
    def equipment(self) -> list[Element]:
        return [e for e in self.catalog.elements if e.level == EQUIP]

    def frame_guid(self, day: int, index: int) -> uuid.UUID:
        prefix = stable_guid(self.seed, "eventframe").bytes[:8]
        return uuid.UUID(bytes=prefix + struct.pack(">iI", day, index))

    def path(self, frame: EventFrame) -> str:
        return f"{self.catalog.database_path}\\EventFrames[{frame.name}]"

    def web_id(self, frame: EventFrame) -> str:
        return webid.encode_full("Fm", (self.catalog.asset_server_guid, frame.guid), self.path(frame))

    # ---- generation --------------------------------------------------------------------------------------------
    def day_frames(self, day: int) -> list[EventFrame]:
        frames = self._days.get(day)
        if frames is None:
            frames = self._generate(day)
            with self._lock:  # request handlers run in worker threads
                self._days[day] = frames
                if len(self._days) > 512:
                    self._days.popitem(last=False)
        return frames

    def _generate(self, day: int) -> list[EventFrame]:
        equipment = self.equipment
        if not equipment or not self.plant.with_event_frames:
            return []
        frames: list[EventFrame] = []
        base = day * DAY_US

        def u(*parts: int) -> float:
            return hashrng.uniform1(self.seed, 7001, day, *parts)

        def add(kind: str, template: FrameTemplate, element: Element, start: int, duration: int) -> None:
            index = len(frames)
            severity = template.severities[int(u(index, 1) * len(template.severities))]
            ack_us, ack_by = None, ""
            if template.can_be_acknowledged and u(index, 2) < 0.75:
                ack_us = start + int(30e6 + u(index, 3) * 1770e6)  # 30 s .. 30 min after the alarm
                ack_by = OPERATORS[int(u(index, 4) * len(OPERATORS))]
            stamp = from_us(start).strftime("%Y%m%d-%H%M%S")
            frame = EventFrame(
                day,
                index,
                self.frame_guid(day, index),
                f"{template.name}.{element.name}.{stamp}.{index:04d}",
                template,
                severity,
                element,
                start,
                start + duration,
                ack_us,
                ack_by,
                kind=kind,
            )
            if u(index, 5) < 0.25:
                for k in range(1 + int(u(index, 6) * 2)):
                    created = start + int((1 + k) * 60e6 + u(index, 7, k) * 600e6)
                    frame.annotations.append(
                        Annotation(
                            stable_guid(self.seed, "annotation", day, index, k),
                            "Operator note",
                            f"Checked {element.name}: {NOTES[(index + k) % len(NOTES)]}",
                            OPERATORS[(index + k) % len(OPERATORS)],
                            created,
                        )
                    )
            frames.append(frame)

        def element_at(*parts: int) -> Element:
            return equipment[int(u(*parts) * len(equipment))]

        quiet = from_us(base).day == QUIET_DAY_OF_MONTH
        next_quiet = from_us(base + DAY_US).day == QUIET_DAY_OF_MONTH
        background = 0 if quiet else max(6, min(2000, int(len(equipment) * 0.6)))
        for i in range(background):
            template = TEMPLATES[int(u(100, i) * 4)]
            start = base + int(u(101, i) * DAY_US)
            if i == 0:  # raised in the morning, cleared 49..60 h later: standing at the end of the next day
                start = base + int(u(101, i) * DAY_US / 2)
                kind, duration = "standing", int((49 + u(103, i) * 11) * 3600e6)
            elif u(102, i) < 0.04:
                kind, duration = "standing", int((25 + u(103, i) * 35) * 3600e6)  # 25..60 h
            elif i == 1:  # raised 5..55 min before midnight, cleared 1..2 h later
                start = base + DAY_US - int((5 + u(106, i) * 50) * 60e6)
                kind, duration = "background", int((60 + u(104, i) * 60) * 60e6)
            else:
                kind, duration = "background", int((1 + u(104, i) * 40) * 60e6)  # 1..41 min
            add(kind, template, element_at(105, i), start, duration)
        if background:  # a drifting clock: one acknowledgement stamped 1..20 s before its alarm started
            drifted = frames[2]
            drifted.ack_us = drifted.start_us - int((1 + u(107) * 19) * 1e6)
            drifted.ack_by = OPERATORS[0]
        bursts = 0 if quiet else max(1, min(20, len(equipment) // 10))
        for c in range(bursts + (0 if quiet or next_quiet else 1)):  # chattering: 6..12 frames, starts <= 25 s apart
            element, template = element_at(200, c), TEMPLATES[int(u(201, c) * 4)]
            if c < bursts:
                t = base + int(u(202, c) * (DAY_US - 3_600_000_000))
            else:  # the last burst starts 20..50 s before midnight and ends after it
                t = base + DAY_US - int((20 + u(202, c) * 30) * 1e6)
            for k in range(6 + int(u(203, c) * 7)):
                duration = int((2 + u(204, c, k) * 8) * 1e6)
                add("chattering", template, element, t, duration)
                t += duration + int((2 + u(205, c, k) * 13) * 1e6)
        window = 600_000_000
        flood_start = base + int(u(300) * (DAY_US // window - 6)) * window  # aligned: one window in flood
        for k in range(0 if quiet else 15 + int(u(301) * 16)):  # flood: 15..30 alarms within 10 minutes
            add(
                "flood",
                TEMPLATES[int(u(302, k) * 4)],
                element_at(303, k),
                flood_start + int(u(304, k) * window),
                int((2 + u(305, k) * 20) * 60e6),
            )
        for k in range(max(1, len(equipment) // 20)):  # downtime: not acknowledgeable
            add(
                "downtime",
                TEMPLATES[4],
                element_at(400, k),
                base + int(u(401, k) * DAY_US),
                int((0.5 + u(402, k) * 4) * 3600e6),
            )
        return frames

    # ---- ground truth ------------------------------------------------------------------------------------------
    def frames(
        self, start: datetime, end: datetime, now: datetime | None = None, search_mode: str = "Overlapped"
    ) -> list[EventFrame]:
        """Frames PI would return for a database search (all of them, no paging, generation order)."""
        now_us = to_us(now) if now else self.plant.clock.now_us()
        return self.search(to_us(start), to_us(end), now_us, search_mode)

    def search(self, start_us: int, end_us: int, now_us: int, mode: str) -> list[EventFrame]:
        mode = mode.lower()
        lo = min(start_us, end_us)
        if mode == "inprogress":
            first_day, last_day = (now_us - 3 * DAY_US) // DAY_US, now_us // DAY_US
        else:
            first_day, last_day = lo // DAY_US - 3, min(max(start_us, end_us), now_us) // DAY_US
        out = []
        for day in range(first_day, last_day + 1):
            for f in self.day_frames(day):
                if f.start_us > now_us:
                    continue
                end = OPEN_US if f.is_open(now_us) else f.end_us
                if mode in ("overlapped", "none"):
                    ok = f.start_us <= end_us and end >= start_us
                elif mode == "inprogress":
                    ok = f.is_open(now_us) and f.start_us <= end_us
                elif mode == "startinclusive":
                    ok = start_us <= f.start_us <= end_us
                elif mode == "endinclusive":
                    ok = start_us <= end <= end_us
                elif mode == "inclusive":
                    ok = start_us <= f.start_us and end <= end_us
                else:
                    raise ValueError(mode)
                if ok:
                    out.append(f)
        return out

    def directional(
        self, t_us: int, now_us: int, mode: str, needed: int, keep: "Callable[[EventFrame], bool]"
    ) -> list[EventFrame]:
        """The first `needed` frames of a Backward*/Forward* search from `t_us`, in search order.

        BackwardFromStartTime / ForwardFromStartTime: frames starting at or before / at or after `t_us`, latest /
        earliest start first; *FromEndTime the same on end times (open frames end at 9999-12-31);
        BackwardInProgress / ForwardInProgress: frames still open at `now_us` that started at or before / at or
        after `t_us`. `keep` applies the other filters, so paging counts only frames the caller returns.
        Day by day from `t_us` (frames last under MAX_SPAN_DAYS), backward at most BACKWARD_LIMIT_DAYS.
        """
        mode = mode.lower()
        forward, by_end, in_progress = mode.startswith("forward"), mode.endswith("endtime"), mode.endswith("inprogress")

        def key(f: EventFrame) -> int:
            return (OPEN_US if f.is_open(now_us) else f.end_us) if by_end else f.start_us

        def wanted(f: EventFrame) -> bool:
            if f.start_us > now_us or (in_progress and not f.is_open(now_us)):
                return False
            return (key(f) >= t_us if forward else key(f) <= t_us) and keep(f)

        margin = MAX_SPAN_DAYS * DAY_US if by_end else 0
        found: list[EventFrame] = []
        if forward:
            first = (t_us - margin) // DAY_US
            if in_progress:
                first = max(first, now_us // DAY_US - MAX_SPAN_DAYS)
            days, safe = range(first, now_us // DAY_US + 1), lambda d, f: key(f) < (d + 1) * DAY_US
        else:
            last = min(t_us, now_us) // DAY_US
            floor = last - BACKWARD_LIMIT_DAYS
            if in_progress:
                floor = max(floor, now_us // DAY_US - MAX_SPAN_DAYS)
            days, safe = range(last, floor - 1, -1), lambda d, f: key(f) >= d * DAY_US + margin
        for day in days:
            found.extend(f for f in self.day_frames(day) if wanted(f))
            if sum(1 for f in found if safe(day, f)) >= needed:
                break
        found.sort(key=lambda f: (key(f), f.name), reverse=not forward)
        return found[:needed]

    # ---- lookups -----------------------------------------------------------------------------------------------
    def lookup(self, decoded: webid.WebId) -> object:
        if decoded.marker == "Fm":
            if decoded.type == "P":
                return self.by_path(decoded.path or "")
            raw = decoded.ids[1].bytes
            if raw[:8] != stable_guid(self.seed, "eventframe").bytes[:8]:
                return None
            day, index = struct.unpack(">iI", raw[8:])
            frame = self._frame(day, index)
            return frame if frame is not None and frame.start_us <= self.plant.clock.now_us() else None
        if decoded.marker == "Nr":
            return self.rule_by_guid(decoded.ids[1]) if decoded.type != "P" else self.rule_by_path(decoded.path or "")
        return None

    def _frame(self, day: int, index: int) -> EventFrame | None:
        frames = self.day_frames(day)
        return frames[index] if 0 <= index < len(frames) else None

    def by_path(self, path: str) -> EventFrame | None:
        prefix = (self.catalog.database_path.lstrip("\\") + "\\EventFrames[").upper()
        text = path.lstrip("\\").upper()
        if not text.startswith(prefix) or not text.endswith("]"):
            return None
        name = text[len(prefix) : -1]
        try:
            stamp, index = name.split(".")[-2:]
            day = to_us(datetime.strptime(stamp, "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)) // DAY_US
            candidate = self._frame(day, int(index))
        except (ValueError, IndexError):
            return None
        if candidate is None or candidate.name.upper() != name or candidate.start_us > self.plant.clock.now_us():
            return None
        return candidate

    # ---- notification rules --------------------------------------------------------------------------------------
    def rules(self, element: Element) -> list["NotificationRule"]:
        if element.level != EQUIP:
            return []
        guid = stable_guid(self.seed, "rule", element.level, element.index)
        name = f"{element.name} alarms"
        path = f"{element.path}\\NotificationRules[{name}]"
        return [
            NotificationRule(
                guid, name, path, element, webid.encode_full("Nr", (self.catalog.asset_server_guid, guid), path)
            )
        ]

    @cached_property
    def _rules_by_guid(self) -> dict[uuid.UUID, "NotificationRule"]:
        return {r.guid: r for e in self.equipment for r in self.rules(e)}

    def rule_by_guid(self, guid: uuid.UUID) -> "NotificationRule | None":
        return self._rules_by_guid.get(guid)

    def rule_by_path(self, path: str) -> "NotificationRule | None":
        return next((r for r in self._rules_by_guid.values() if r.path.lstrip("\\").upper() == path.upper()), None)


OPEN_US = to_us(OPEN_END)
MAX_SPAN_DAYS = 3  # no generated frame lasts longer (standing alarms: up to 60 h)
BACKWARD_LIMIT_DAYS = 366  # how far a Backward* search looks before giving up
NOTES = ("seal leak suspected", "sensor recalibrated", "operator confirmed", "work order raised", "false alarm")


@dataclass(frozen=True)
class NotificationRule:
    guid: uuid.UUID
    name: str
    path: str
    element: Element
    web_id: str
