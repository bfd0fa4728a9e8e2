"""Search endpoints: elements/search, attributes/search, eventframes/search (AF query strings, see afsearch),
the flat attribute searches assetdatabases|elements/{webId}/elementattributes, and eventframes/{webId}/eventframes.

Results are paged with startIndex/maxCount in the order the listing endpoints use (elements and attributes by
name and path, event frames by name), rendered by the same functions as the listings.
"""

from collections.abc import Callable

from pi_platform.simulator import afsearch, render
from pi_platform.simulator.api import ApiError, Ctx, Reply, Router
from pi_platform.simulator.catalog import Attribute, Element, descendants, wildcard
from pi_platform.simulator.events import OPEN_US, EventFrame
from pi_platform.simulator.routes_events import frame_json

ELEMENT_FIELDS = ("name", "description", "template", "category", "categoryname", "root")
ATTRIBUTE_FIELDS = ("name", "description", "category", "categoryname", "type", "element", "template", "root")
FRAME_FIELDS = ("name", "template", "category", "categoryname", "severity", "start", "end", "inprogress")
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
DEFAULT_LOOKBACK_US = 30 * 86_400_000_000  # an event-frame query with only an upper time bound looks this far back


def _database(ctx: Ctx) -> None:
    web_id = ctx.get("databaseWebId")
    if web_id:
        ctx.lookup(web_id, "database")


def _page(ctx: Ctx, found: list) -> list:
    start, count = ctx.start_index(), ctx.max_count()
    return found[start : start + count]


def _text_matches(term: afsearch.Term, texts: list[str]) -> bool:
    """`=`: some text matches the pattern; `<>`: none does (an object without such a field has none)."""
    hits = [term.matches_text(t) for t in texts] or [term.op != "="]
    return any(hits) if term.op == "=" else all(hits)


def _flat(term: afsearch.Term) -> str:
    if not isinstance(term.value, str):
        raise ApiError(400, f"The query field '{term.field}' does not take a nested query.")
    return term.value


def _element_matches(e: Element, terms: tuple[afsearch.Term, ...]) -> bool:
    for term in terms:
        value = _flat(term)
        if term.field == "root":
            inside = e.path.strip("\\").upper().startswith(value.strip("\\").upper() + "\\")
            if inside != (term.op == "="):
                return False
            continue
        texts = {
            "name": [e.name],
            "description": [f"{e.template} {e.name}"],
            "template": [e.template],
            "category": e.categories,
            "categoryname": e.categories,
        }[term.field]
        if not _text_matches(term, texts):
            return False
    return True


def _attribute_matches(a: Attribute, terms: tuple[afsearch.Term, ...]) -> bool:
    for term in terms:
        if term.field == "element":
            inner = term.value if isinstance(term.value, tuple) else (afsearch.Term("name", "=", term.value),)
            if not _element_matches(a.element, inner):
                return False
            continue
        _flat(term)
        texts = {
            "name": [a.name],
            "description": [],
            "category": a.categories,
            "categoryname": a.categories,
            "type": [a.attribute_type],
        }.get(term.field)
        if texts is None:
            raise ApiError(400, f"The query field '{term.field}' applies to elements; write Element:{{...}}.")
        if not _text_matches(term, texts):
            return False
    return True


def _all_elements(ctx: Ctx) -> list[Element]:
    return sorted(descendants(ctx.plant.catalog.roots), key=lambda e: (e.name.upper(), e.path.upper()))


def elements_search(ctx: Ctx) -> Reply:
    _database(ctx)
    terms = afsearch.parse(ctx.get("query"), ELEMENT_FIELDS)
    found = [e for e in _all_elements(ctx) if _element_matches(e, terms)]
    return Reply(body=render.items([render.element(ctx, e) for e in _page(ctx, found)]))


def _attribute_items(ctx: Ctx, attributes: list[Attribute]) -> Reply:
    with_dr = "datareference" in (ctx.get("associations") or "").lower()
    return Reply(body=render.items([render.attribute(ctx, a, data_reference=with_dr) for a in _page(ctx, attributes)]))


def attributes_search(ctx: Ctx) -> Reply:
    _database(ctx)
    terms = afsearch.parse(ctx.get("query"), ATTRIBUTE_FIELDS)
    found = [
        a
        for e in _all_elements(ctx)
        for a in sorted(e.attributes, key=lambda a: a.name.upper())
        if _attribute_matches(a, terms)
    ]
    return _attribute_items(ctx, found)


def _element_attributes(ctx: Ctx, children: list[Element]) -> Reply:
    """elementattributes: attributes of the elements below the target (its children, or all descendants with
    searchFullHierarchy), filtered by the element* and attribute* parameters."""
    scope = descendants(children) if ctx.bool("searchFullHierarchy", False) else children
    element_name, attribute_name = wildcard(ctx.get("elementNameFilter")), wildcard(ctx.get("attributeNameFilter"))
    element_template = (ctx.get("elementTemplate") or "").upper()
    element_category = (ctx.get("elementCategory") or "").upper()
    attribute_category = (ctx.get("attributeCategory") or "").upper()
    attribute_type = (ctx.get("attributeType") or "").upper()
    found = [
        a
        for e in sorted(scope, key=lambda e: (e.name.upper(), e.path.upper()))
        if (element_name is None or element_name.match(e.name))
        and (not element_template or e.template.upper() == element_template)
        and (not element_category or element_category in (c.upper() for c in e.categories))
        for a in sorted(e.attributes, key=lambda a: a.name.upper())
        if (attribute_name is None or attribute_name.match(a.name))
        and (not attribute_category or attribute_category in (c.upper() for c in a.categories))
        and (not attribute_type or a.attribute_type.upper() == attribute_type)
    ]
    return _attribute_items(ctx, found)


def database_element_attributes(ctx: Ctx, web_id: str) -> Reply:
    ctx.lookup(web_id, "database")
    return _element_attributes(ctx, ctx.plant.catalog.roots)


def element_element_attributes(ctx: Ctx, web_id: str) -> Reply:
    element: Element = ctx.lookup(web_id, Element)  # type: ignore[assignment]
    return _element_attributes(ctx, element.children)


def _frame_matches(frame: EventFrame, terms: tuple[afsearch.Term, ...], now: int, bounds: list[int]) -> bool:
    """`bounds[i]` is term i's time (Start/End terms only)."""
    for term, bound in zip(terms, bounds):
        value = _flat(term)
        if term.field in ("start", "end"):
            at = frame.start_us if term.field == "start" else (OPEN_US if frame.is_open(now) else frame.end_us)
            if not _COMPARE[term.op](at, bound):
                return False
        elif term.field == "inprogress":
            if frame.is_open(now) != (value.lower() == "true"):
                return False
        elif not _text_matches(
            term,
            {
                "name": [frame.name],
                "template": [frame.template.name],
                "category": [frame.template.category],
                "categoryname": [frame.template.category],
                "severity": [frame.severity],
            }[term.field],
        ):
            return False
    return True


def event_frames_search(ctx: Ctx) -> Reply:
    """eventframes/search: frames overlapping the window the Start/End terms bound (`*-8h`..`*` without any;
    DEFAULT_LOOKBACK_US before an upper bound alone), then every term checked exactly; sorted by name."""
    _database(ctx)
    terms = afsearch.parse(ctx.get("query"), FRAME_FIELDS)
    now = ctx.plant.clock.now_us()
    timed = [t.field in ("start", "end") for t in terms]
    bounds = [ctx.parse_us("query", _flat(t)) if is_time else 0 for t, is_time in zip(terms, timed)]
    lower = [b for t, b, is_time in zip(terms, bounds, timed) if is_time and t.op in (">", ">=", "=")]
    upper = [b for t, b, is_time in zip(terms, bounds, timed) if is_time and t.op in ("<", "<=", "=")]
    hi = min(upper) if upper else now
    lo = max(lower) if lower else (hi - DEFAULT_LOOKBACK_US if any(timed) else ctx.parse_us("startTime", "*-8h"))
    frames = ctx.plant.events.search(lo, hi, now, "Overlapped") if lo <= hi else []
    found = sorted((f for f in frames if _frame_matches(f, terms, now, bounds)), key=lambda f: f.name.upper())
    return Reply(body=render.items([frame_json(ctx, f) for f in _page(ctx, found)]))


def child_event_frames(ctx: Ctx, web_id: str) -> Reply:
    """eventframes/{webId}/eventframes: the simulator's frames have no child frames (HasChildren is false)."""
    ctx.lookup(web_id, EventFrame)
    return Reply(body=render.items([]))


def register(router: Router) -> None:
    add = router.add
    add("GET", "elements/search", elements_search)
    add("GET", "attributes/search", attributes_search)
    add("GET", "eventframes/search", event_frames_search)
    add("GET", "assetdatabases/{web_id}/elementattributes", database_element_attributes)
    add("GET", "elements/{web_id}/elementattributes", element_element_attributes)
    add("GET", "eventframes/{web_id}/eventframes", child_event_frames)
