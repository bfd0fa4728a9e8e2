"""Event frame, annotation and notification rule endpoints."""

from pi_platform.pitime import format_time, from_us
from pi_platform.simulator import render
from pi_platform.simulator.api import ApiError, Ctx, Reply, Router, by_path
from pi_platform.simulator.catalog import Element, descendants, wildcard
from pi_platform.simulator.events import (
    NEVER_ACK_TEXT,
    OPEN_END_TEXT,
    SEVERITIES,
    EventFrame,
    NotificationRule,
)

SEARCH_MODES = ("None", "Overlapped", "InProgress", "StartInclusive", "EndInclusive", "Inclusive")
# Searches from startTime in one direction, in search order (no endTime, sortField or sortOrder).
DIRECTIONAL_MODES = (
    "BackwardFromStartTime",
    "ForwardFromStartTime",
    "BackwardFromEndTime",
    "ForwardFromEndTime",
    "BackwardInProgress",
    "ForwardInProgress",
)
SORT_KEYS = {
    "name": lambda f: f.name.upper(),
    "starttime": lambda f: (f.start_us, f.name),
    "endtime": lambda f: (f.end_us, f.name),
}


def frame_json(ctx: Ctx, f: EventFrame) -> dict:
    now = ctx.plant.clock.now_us()
    events = ctx.plant.events
    web = ctx.emit(events.web_id(f))
    element_web = ctx.emit(f.element.web_id)
    acknowledged = f.is_acknowledged(now)
    notes = f.annotations_at(now)
    return {
        "WebId": web,
        "Id": str(f.guid),
        "Name": f.name,
        "Description": f"{f.template.name} on {f.element.name}",
        "Path": events.path(f),
        "TemplateName": f.template.name,
        "HasChildren": False,
        "CategoryNames": [f.template.category],
        "ExtendedProperties": {},
        "StartTime": format_time(f.start),
        "EndTime": OPEN_END_TEXT if f.is_open(now) else format_time(from_us(f.end_us)),
        "Severity": f.severity,
        "AcknowledgedBy": f.ack_by if acknowledged else "",
        "AcknowledgedDate": format_time(from_us(f.ack_us)) if acknowledged and f.ack_us is not None else NEVER_ACK_TEXT,
        "CanBeAcknowledged": f.template.can_be_acknowledged,
        "IsAcknowledged": acknowledged,
        "IsAnnotated": bool(notes),
        "IsLocked": False,
        "AreValuesCaptured": not f.is_open(now),
        "RefElementWebIds": [element_web],
        "Links": {
            "Self": ctx.link("eventframes", web),
            "Annotations": ctx.link("eventframes", web, "annotations"),
            "Database": ctx.link("assetdatabases", ctx.emit(ctx.plant.catalog.database_web_id)),
            "PrimaryReferencedElement": ctx.link("elements", element_web),
        },
    }


def _search(ctx: Ctx, element: Element | None) -> Reply:
    mode = ctx.get("searchMode") or "Overlapped"
    modes = SEARCH_MODES + DIRECTIONAL_MODES
    canonical = next((m for m in modes if m.lower() == mode.lower()), None)
    if canonical is None:
        raise ApiError(400, f"The value '{mode}' is not valid for searchMode; supported: {', '.join(modes)}.")
    directional = canonical in DIRECTIONAL_MODES
    if directional and any(ctx.get(p) for p in ("endTime", "sortField", "sortOrder")):
        raise ApiError(400, f"With searchMode {canonical}, none of endTime, sortField or sortOrder may be specified.")
    start, end = ctx.time_us("startTime", "*-8h"), ctx.time_us("endTime", "*")
    now = ctx.plant.clock.now_us()
    severities = {s.lower() for value in ctx.getall("severity") for s in value.split(",") if s}
    unknown = severities - {s.lower() for s in SEVERITIES}
    if unknown:
        raise ApiError(400, f"The value '{sorted(unknown)[0]}' is not valid for severity.")
    template = (ctx.get("templateName") or "").lower()
    category = (ctx.get("categoryName") or "").lower()
    name = wildcard(ctx.get("nameFilter"))
    ref_name = wildcard(ctx.get("referencedElementNameFilter"))
    can_ack, is_ack = ctx.bool("canBeAcknowledged", None), ctx.bool("isAcknowledged", None)
    scope: set[int] | None = None
    if element is not None:
        scope = {id(e) for e in (descendants([element]) if ctx.bool("searchFullHierarchy", False) else [element])}


    def keep(f: EventFrame) -> bool:
        return (
            (not severities or f.severity.lower() in severities)
            and (not template or f.template.name.lower() == template)
            and (not category or f.template.category.lower() == category)
            and (name is None or name.match(f.name))
            and (ref_name is None or ref_name.match(f.element.name))
            and (can_ack is None or f.template.can_be_acknowledged == can_ack)
            and (is_ack is None or f.is_acknowledged(now) == is_ack)
            and (scope is None or id(f.element) in scope)
        )

    start_index, count = ctx.start_index(), ctx.max_count()
    if directional:
        found = ctx.plant.events.directional(start, now, canonical, start_index + count, keep)
        return Reply(body=render.items([frame_json(ctx, f) for f in found[start_index:]]))
    selected = [f for f in ctx.plant.events.search(start, end, now, canonical) if keep(f)]
    sort_field = (ctx.get("sortField") or "Name").lower()
    if sort_field not in SORT_KEYS:
        raise ApiError(400, f"The value '{ctx.get('sortField')}' is not valid for sortField.")
    selected.sort(key=SORT_KEYS[sort_field], reverse=(ctx.get("sortOrder") or "").lower() == "descending")
    return Reply(body=render.items([frame_json(ctx, f) for f in selected[start_index : start_index + count]]))


def database_event_frames(ctx: Ctx, web_id: str) -> Reply:
    ctx.lookup(web_id, "database")
    return _search(ctx, None)


def element_event_frames(ctx: Ctx, web_id: str) -> Reply:
    return _search(ctx, ctx.lookup(web_id, Element))  # type: ignore[arg-type]


def event_frame(ctx: Ctx, web_id: str) -> Reply:
    return Reply(body=frame_json(ctx, ctx.lookup(web_id, EventFrame)))  # type: ignore[arg-type]


def event_frame_by_path(ctx: Ctx) -> Reply:
    return Reply(body=frame_json(ctx, by_path(ctx, "event frame", ctx.plant.events.by_path)))  # type: ignore[arg-type]


def annotations(ctx: Ctx, web_id: str) -> Reply:
    frame: EventFrame = ctx.lookup(web_id, EventFrame)  # type: ignore[assignment]
    items = []
    for a in frame.annotations_at(ctx.plant.clock.now_us()):
        stamp = format_time(from_us(a.created_us))
        items.append(
            {
                "Id": str(a.id),
                "Name": a.name,
                "Description": "",
                "Value": a.value,
                "Creator": a.creator,
                "CreationDate": stamp,
                "Modifier": a.creator,
                "ModifyDate": stamp,
                "Links": {
                    "Self": ctx.link("eventframes", ctx.emit(ctx.plant.events.web_id(frame)), "annotations", str(a.id))
                },
            }
        )
    return Reply(body=render.items(items))


def rule_json(ctx: Ctx, rule: NotificationRule) -> dict:
    web = ctx.emit(rule.web_id)
    return {
        "WebId": web,
        "Id": str(rule.guid),
        "Name": rule.name,
        "Description": f"Notify operators of alarms on {rule.element.name}",
        "Path": rule.path,
        "TemplateName": "",
        "CategoryNames": ["Alarm"],
        "Criteria": f"Category:'Alarm' Element:'{rule.element.name}'",
        "MultiTriggerEventOption": "HighestSeverity",
        "NonrepetitionInterval": "PT0S",
        "ResendInterval": "PT0S",
        "Status": "Enabled",
        "AutoCreated": False,
        "Links": {
            "Self": ctx.link("notificationrules", web),
            "Element": ctx.link("elements", ctx.emit(rule.element.web_id)),
        },
    }


def element_rules(ctx: Ctx, web_id: str) -> Reply:
    element: Element = ctx.lookup(web_id, Element)  # type: ignore[assignment]
    return Reply(body=render.items([rule_json(ctx, r) for r in ctx.plant.events.rules(element)]))


def rule(ctx: Ctx, web_id: str) -> Reply:
    return Reply(body=rule_json(ctx, ctx.lookup(web_id, NotificationRule)))  # type: ignore[arg-type]


def rules_search(ctx: Ctx) -> Reply:
    database = ctx.get("databaseWebId")
    if not database:
        raise ApiError(400, "The databaseWebId parameter is required.")
    ctx.lookup(database, "database")
    pattern = "*"
    for term in (ctx.get("query") or "").split():
        field, _, value = term.partition(":")
        if field.lower() == "name":
            pattern = value.lstrip("=").strip("'\"") or "*"
    regex = wildcard(pattern)
    start, count = ctx.start_index(), ctx.max_count()
    events = ctx.plant.events
    found = [r for e in events.equipment for r in events.rules(e) if regex is None or regex.match(r.name)]
    return Reply(body=render.items([rule_json(ctx, r) for r in found[start : start + count]]))


def register(router: Router) -> None:
    add = router.add
    add("GET", "assetdatabases/{web_id}/eventframes", database_event_frames)
    add("GET", "elements/{web_id}/eventframes", element_event_frames)
    add("GET", "eventframes", event_frame_by_path)
    add("GET", "eventframes/{web_id}", event_frame)
    add("GET", "eventframes/{web_id}/annotations", annotations)
    add("GET", "elements/{web_id}/notificationrules", element_rules)
    add("GET", "notificationrules/search", rules_search)
    add("GET", "notificationrules/{web_id}", rule)
