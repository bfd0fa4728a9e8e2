"""Landing, system, AF hierarchy, data server, points and digital sets endpoints."""

import time

from pi_platform.pitime import format_time, from_us
from pi_platform.simulator import render
from pi_platform.simulator.api import ApiError, Ctx, Reply, Router, by_path, caller_identity
from pi_platform.simulator.catalog import (
    DIGITAL_SETS,
    Attribute,
    Catalog,
    Element,
    EnumerationSetRef,
    Point,
    descendants,
    wildcard,
)
from pi_platform.simulator.plant import Plant

_STARTED = time.monotonic()


def landing(ctx: Ctx) -> Reply:
    return Reply(
        body={
            "Links": {
                "Self": ctx.base + "/",
                "AssetServers": ctx.link("assetservers"),
                "DataServers": ctx.link("dataservers"),
                "Search": ctx.link("search"),
                "System": ctx.link("system"),
            }
        }
    )


def system(ctx: Ctx) -> Reply:
    return Reply(
        body={
            "ProductTitle": "PI Web API 2018 SP1 (pi_platform simulator)",
            "ProductVersion": render.PRODUCT_VERSION,
            "Links": {
                "Self": ctx.link("system"),
                "CacheInstances": ctx.link("system", "cacheinstances"),
                "Configuration": ctx.link("system", "configuration"),
                "UserInfo": ctx.link("system", "userinfo"),
                "Versions": ctx.link("system", "versions"),
                "Status": ctx.link("system", "status"),
            },
        }
    )


def system_status(ctx: Ctx) -> Reply:
    return Reply(
        body={
            "UpTimeInMinutes": round((time.monotonic() - _STARTED) / 60, 3),
            "State": "Running",
            "CacheInstances": 0,
            "ServerTime": format_time(ctx.plant.now()),
        }
    )


def user_info(ctx: Ctx) -> Reply:
    user = caller_identity(ctx.headers)
    return Reply(
        body={
            "IdentityType": "GenericIdentity" if user else "AnonymousIdentity",
            "Name": user,
            "IsAuthenticated": bool(user),
            "SID": "",
            "ImpersonationLevel": "Impersonation",
        }
    )


def channel_instances(ctx: Ctx) -> Reply:
    """channels/instances: the WebSocket channels open on this server (Items[ChannelInstance])."""
    channels = ctx.channels.instances() if ctx.channels is not None else []
    items = []
    for c in channels:
        started = format_time(from_us(c.started_us))
        items.append(
            {
                "Id": c.id,
                "StartTime": started,
                "LastMessageSentTime": format_time(from_us(c.last_sent_us)) if c.last_sent_us is not None else started,
                "SentMessageCount": c.sent_count,
            }
        )
    return Reply(body=render.items(items))


# ---- asset servers / databases --------------------------------------------------------------------------
def asset_servers(ctx: Ctx) -> Reply:
    path = ctx.get("path")
    if path is not None:
        if path.strip("\\").upper() != ctx.plant.catalog.asset_server_name.upper():
            raise ApiError(404, f"The specified asset server was not found: '{path}'.")
        return Reply(body=render.asset_server(ctx))
    return Reply(body=render.items([render.asset_server(ctx)]))


def asset_server(ctx: Ctx, web_id: str) -> Reply:
    ctx.lookup(web_id, "assetserver")
    return Reply(body=render.asset_server(ctx))


def asset_databases(ctx: Ctx, web_id: str) -> Reply:
    ctx.lookup(web_id, "assetserver")
    return Reply(body=render.items([render.asset_database(ctx)]))


def asset_database(ctx: Ctx, web_id: str) -> Reply:
    ctx.lookup(web_id, "database")
    return Reply(body=render.asset_database(ctx))


def asset_database_by_path(ctx: Ctx) -> Reply:
    path = ctx.get("path") or ""
    if path.lstrip("\\").upper() != ctx.plant.catalog.database_path.lstrip("\\").upper():
        raise ApiError(404, f"The specified database was not found: '{path}'.")
    return Reply(body=render.asset_database(ctx))


# ---- elements and attributes -----------------------------------------------------------------------------
def _sorted_scope(catalog: Catalog, parent: Element | None, full: bool, descending: bool) -> list[Element]:
    """Children or all descendants sorted by name (sortField=Name); big full-hierarchy scopes are cached."""
    cache_key = ("scope", id(parent), full, descending)
    scope = catalog.cache.get(cache_key)
    if scope is None:
        roots = catalog.roots if parent is None else parent.children
        scope = descendants(roots) if full else list(roots)
        scope.sort(key=lambda e: (e.name.upper(), e.path.upper()), reverse=descending)
        if full:
            catalog.remember(cache_key, scope)
    return scope


def _element_list(ctx: Ctx, parent: Element | None) -> Reply:
    descending = (ctx.get("sortOrder") or "Ascending").lower() == "descending"
    scope = _sorted_scope(ctx.plant.catalog, parent, bool(ctx.bool("searchFullHierarchy", False)), descending)
    name = wildcard(ctx.get("nameFilter"))
    template = (ctx.get("templateName") or "").upper()
    category = (ctx.get("categoryName") or "").upper()
    start, count = ctx.start_index(), ctx.max_count()
    selected = [
        e
        for e in scope
        if (name is None or name.match(e.name))
        and (not template or e.template.upper() == template)
        and (not category or category in (c.upper() for c in e.categories))
    ]
    return Reply(body=render.items([render.element(ctx, e) for e in selected[start : start + count]]))


def database_elements(ctx: Ctx, web_id: str) -> Reply:
    ctx.lookup(web_id, "database")
    return _element_list(ctx, None)


def child_elements(ctx: Ctx, web_id: str) -> Reply:
    return _element_list(ctx, ctx.lookup(web_id, Element))  # type: ignore[arg-type]


def element_by_id(ctx: Ctx, web_id: str) -> Reply:
    return Reply(body=render.element(ctx, ctx.lookup(web_id, Element)))  # type: ignore[arg-type]


def element_by_path(ctx: Ctx) -> Reply:
    return Reply(body=render.element(ctx, by_path(ctx, "element", ctx.plant.catalog.element_by_path)))  # type: ignore[arg-type]


def element_attributes(ctx: Ctx, web_id: str) -> Reply:
    element: Element = ctx.lookup(web_id, Element)  # type: ignore[assignment]
    name = wildcard(ctx.get("nameFilter"))
    category = (ctx.get("categoryName") or "").upper()
    value_type = (ctx.get("valueType") or "").upper()
    start, count = ctx.start_index(), ctx.max_count()
    with_dr = "datareference" in (ctx.get("associations") or "").lower()
    selected = [
        a
        for a in sorted(element.attributes, key=lambda a: a.name.upper())
        if (name is None or name.match(a.name))
        and (not category or category in (c.upper() for c in a.categories))
        and (not value_type or a.attribute_type.upper() == value_type)
    ]
    return Reply(
        body=render.items([render.attribute(ctx, a, data_reference=with_dr) for a in selected[start : start + count]])
    )


def attribute_by_id(ctx: Ctx, web_id: str) -> Reply:
    return Reply(body=render.attribute(ctx, ctx.lookup(web_id, Attribute)))  # type: ignore[arg-type]


def attribute_by_path(ctx: Ctx) -> Reply:
    return Reply(body=render.attribute(ctx, by_path(ctx, "attribute", ctx.plant.catalog.attribute_by_path)))  # type: ignore[arg-type]


# ---- data server, points, digital sets -------------------------------------------------------------------
def data_servers(ctx: Ctx) -> Reply:
    cat = ctx.plant.catalog
    name = ctx.get("name") or ctx.get("path")
    if name is not None:
        wanted = name.strip("\\").upper()
        if wanted not in (cat.data_server_name.upper(), cat.data_server_path.strip("\\").upper()):
            raise ApiError(404, f"The specified data server was not found: '{name}'.")
        return Reply(body=render.data_server(ctx))
    return Reply(body=render.items([render.data_server(ctx)]))


def data_server(ctx: Ctx, web_id: str) -> Reply:
    ctx.lookup(web_id, "dataserver")
    return Reply(body=render.data_server(ctx))


def _points_matching(plant: Plant, pattern: str) -> list[Point]:
    """Points in listing order matching a name filter, deleted ones left out; cached so paging through a filter
    is not quadratic."""
    catalog = plant.catalog
    cache_key = ("points", pattern.upper())
    found = catalog.cache.get(cache_key)
    if found is None:
        regex = wildcard(pattern)
        ordered = catalog.points_by_name_order
        found = ordered if regex is None else [p for p in ordered if regex.match(p.name)]
        catalog.remember(cache_key, found)
    if plant.failure_log.has_deletions:
        return [p for p in found if not plant.is_deleted(p)]
    return found


def data_server_points(ctx: Ctx, web_id: str) -> Reply:
    ctx.lookup(web_id, "dataserver")
    selected = _points_matching(ctx.plant, ctx.get("nameFilter") or "*")
    start, count = ctx.start_index(), ctx.max_count()
    return Reply(body=render.items([render.point_json(ctx, p) for p in selected[start : start + count]]))


def points_search(ctx: Ctx) -> Reply:
    """`points/search?dataServerWebId=..&query=Tag:=pump*` (name queries only)."""
    server = ctx.get("dataServerWebId")
    if server:
        ctx.lookup(server, "dataserver")
    query = (ctx.get("query") or "").strip()
    pattern = "*"
    for term in query.split():
        field, _, value = term.partition(":")
        if field.lower() in ("tag", "name"):
            pattern = value.lstrip("=").strip("'\"") or "*"
    count = ctx.int("maxCount", 1000)
    if count > 1000:
        raise ApiError(400, "Parameter maxCount cannot be greater than 1000.")
    start = ctx.start_index()
    selected = _points_matching(ctx.plant, pattern)
    return Reply(body=render.items([render.point_json(ctx, p) for p in selected[start : start + count]]))


def point_by_id(ctx: Ctx, web_id: str) -> Reply:
    return Reply(body=render.point_json(ctx, ctx.lookup(web_id, Point)))  # type: ignore[arg-type]


def point_by_path(ctx: Ctx) -> Reply:
    def find(path: str) -> Point | None:
        server, _, tag = path.lstrip("\\").partition("\\")
        point = ctx.plant.catalog.point_by_name(tag) if server.upper() == ctx.plant.data_server_name.upper() else None
        return None if point is None or ctx.plant.is_deleted(point) else point

    return Reply(body=render.point_json(ctx, by_path(ctx, "point", find)))  # type: ignore[arg-type]


def point_attributes(ctx: Ctx, web_id: str, name: str | None = None) -> Reply:
    point: Point = ctx.lookup(web_id, Point)  # type: ignore[assignment]
    web = ctx.emit(point.web_id)
    plant = ctx.plant
    attrs = render.point_attributes(point, plant.compression(point), plant.catalog.interface_id(point.pointsource))
    wanted = [name] if name else ctx.getall("name")
    if wanted:
        missing = [n for n in wanted if n.lower() not in attrs]
        if missing:
            raise ApiError(400, "Some or all of the point attribute names could not be found.")
        chosen = {n.lower(): attrs[n.lower()] for n in wanted}
    else:
        regex = wildcard(ctx.get("nameFilter"))
        chosen = {k: v for k, v in attrs.items() if regex is None or regex.match(k)}
    rendered = [
        {
            "Name": k,
            "Value": v,
            "Links": {"Self": ctx.link("points", web, "attributes", k), "Point": ctx.link("points", web)},
        }
        for k, v in chosen.items()
    ]
    if name:
        return Reply(body=rendered[0])
    return Reply(body=render.items(rendered))


def enumeration_sets(ctx: Ctx, web_id: str) -> Reply:
    ctx.lookup(web_id, "dataserver")
    return Reply(body=render.items([render.enumeration_set(ctx, n) for n in [*DIGITAL_SETS, "SYSTEM"]]))


def enumeration_set(ctx: Ctx, web_id: str) -> Reply:
    ref: EnumerationSetRef = ctx.lookup(web_id, EnumerationSetRef)  # type: ignore[assignment]
    return Reply(body=render.enumeration_set(ctx, ref.name))


def enumeration_values(ctx: Ctx, web_id: str) -> Reply:
    ref: EnumerationSetRef = ctx.lookup(web_id, EnumerationSetRef)  # type: ignore[assignment]
    return Reply(body=render.items(render.enumeration_values(ctx, ref.name)))


def register(router: Router) -> None:
    add = router.add
    add("GET", "", landing)
    add("GET", "system", system)
    add("GET", "system/status", system_status)
    add("GET", "system/userinfo", user_info)
    add("GET", "channels/instances", channel_instances)
    add("GET", "assetservers", asset_servers)
    add("GET", "assetservers/{web_id}", asset_server)
    add("GET", "assetservers/{web_id}/assetdatabases", asset_databases)
    add("GET", "assetdatabases", asset_database_by_path)
    add("GET", "assetdatabases/{web_id}", asset_database)
    add("GET", "assetdatabases/{web_id}/elements", database_elements)
    add("GET", "elements", element_by_path)
    add("GET", "elements/{web_id}", element_by_id)
    add("GET", "elements/{web_id}/elements", child_elements)
    add("GET", "elements/{web_id}/attributes", element_attributes)
    add("GET", "attributes", attribute_by_path)
    add("GET", "attributes/{web_id}", attribute_by_id)
    add("GET", "dataservers", data_servers)
    add("GET", "dataservers/{web_id}", data_server)
    add("GET", "dataservers/{web_id}/points", data_server_points)
    add("GET", "dataservers/{web_id}/enumerationsets", enumeration_sets)
    add("GET", "enumerationsets/{web_id}", enumeration_set)
    add("GET", "enumerationsets/{web_id}/enumerationvalues", enumeration_values)
    add("GET", "points", point_by_path)
    add("GET", "points/search", points_search)
    add("GET", "points/{web_id}", point_by_id)
    add("GET", "points/{web_id}/attributes", point_attributes)
    add("GET", "points/{web_id}/attributes/{name}", point_attributes)
