"""JSON representations of plant objects, field for field as the 2018 SP1 swagger defines them.

Links are absolute URLs built from the request's base URL, as a real server does; links that do not
apply are omitted rather than null (the swagger types them as strings).
"""

from pi_platform import webid
from pi_platform.pitime import format_time
from pi_platform.simulator.api import Ctx
from pi_platform.simulator.catalog import Attribute, Element, Point, stable_guid
from pi_platform.simulator.compression import Compression

PRODUCT_VERSION = "1.11.1.5383"
UNIT_NAMES = {
    "m3/h": "cubic meter per hour",
    "bar": "bar",
    "rpm": "revolutions per minute",
    "°C": "degree Celsius",
    "mm/s": "millimeter per second",
    "kW": "kilowatt",
    "h": "hour",
    "%": "percent",
    "m3": "cubic meter",
    "t": "tonne",
    "t/h": "tonne per hour",
    "": "",
}


def items(objects: list[dict]) -> dict:
    return {"Links": {}, "Items": objects}


def asset_server(ctx: Ctx) -> dict:
    cat = ctx.plant.catalog
    web = ctx.emit(cat.asset_server_web_id)
    return {
        "WebId": web,
        "Id": str(cat.asset_server_guid),
        "Name": cat.asset_server_name,
        "Description": "Simulated AF server",
        "Path": f"\\\\{cat.asset_server_name}",
        "IsConnected": True,
        "ServerVersion": "2.10.9.593",
        "ServerTime": _now(ctx),
        "ExtendedProperties": {},
        "Links": {"Self": ctx.link("assetservers", web), "Databases": ctx.link("assetservers", web, "assetdatabases")},
    }


def asset_database(ctx: Ctx) -> dict:
    cat = ctx.plant.catalog
    web = ctx.emit(cat.database_web_id)
    return {
        "WebId": web,
        "Id": str(cat.database_guid),
        "Name": cat.database_name,
        "Description": "Simulated plant",
        "Path": cat.database_path,
        "ExtendedProperties": {},
        "Links": {
            "Self": ctx.link("assetdatabases", web),
            "Elements": ctx.link("assetdatabases", web, "elements"),
            "EventFrames": ctx.link("assetdatabases", web, "eventframes"),
            "AssetServer": ctx.link("assetservers", ctx.emit(cat.asset_server_web_id)),
        },
    }


def data_server(ctx: Ctx) -> dict:
    cat = ctx.plant.catalog
    web = ctx.emit(cat.data_server_web_id)
    return {
        "WebId": web,
        "Id": str(cat.data_server_guid),
        "Name": cat.data_server_name,
        "Path": cat.data_server_path,
        "IsConnected": True,
        "ServerVersion": "3.4.440.477",
        "ServerTime": _now(ctx),
        "Links": {
            "Self": ctx.link("dataservers", web),
            "Points": ctx.link("dataservers", web, "points"),
            "EnumerationSets": ctx.link("dataservers", web, "enumerationsets"),
        },
    }


def element(ctx: Ctx, e: Element) -> dict:
    web = ctx.emit(e.web_id)
    links = {
        "Self": ctx.link("elements", web),
        "Elements": ctx.link("elements", web, "elements"),
        "Attributes": ctx.link("elements", web, "attributes"),
        "Database": ctx.link("assetdatabases", ctx.emit(ctx.plant.catalog.database_web_id)),
        "EventFrames": ctx.link("elements", web, "eventframes"),
        "NotificationRules": ctx.link("elements", web, "notificationrules"),
        "RecordedData": ctx.link("streamsets", web, "recorded"),
        "Value": ctx.link("streamsets", web, "value"),
        "EndValue": ctx.link("streamsets", web, "end"),
    }
    if e.parent is not None:
        links["Parent"] = ctx.link("elements", ctx.emit(e.parent.web_id))
    return {
        "WebId": web,
        "Id": str(e.guid),
        "Name": e.name,
        "Description": f"{e.template} {e.name}",
        "Path": e.path,
        "TemplateName": e.template,
        "HasChildren": bool(e.children),
        "CategoryNames": list(e.categories),
        "ExtendedProperties": {},
        "Links": links,
    }


def attribute(ctx: Ctx, a: Attribute, *, data_reference: bool = False) -> dict:
    web = ctx.emit(a.web_id)
    point = a.point
    links = {
        "Self": ctx.link("attributes", web),
        "Element": ctx.link("elements", ctx.emit(a.element.web_id)),
        "Value": ctx.link("streams", web, "value"),
    }
    if point is not None:
        links.update(
            {
                "Point": ctx.link("points", ctx.emit(point.web_id)),
                "EndValue": ctx.link("streams", web, "end"),
                "RecordedData": ctx.link("streams", web, "recorded"),
                "InterpolatedData": ctx.link("streams", web, "interpolated"),
                "SummaryData": ctx.link("streams", web, "summary"),
            }
        )
        if point.digital_set:
            set_web = ctx.emit(ctx.plant.catalog.enumeration_set_web_id(point.digital_set))
            links["EnumerationSet"] = ctx.link("enumerationsets", set_web)
            links["EnumerationValues"] = ctx.link("enumerationsets", set_web, "enumerationvalues")
    body = {
        "WebId": web,
        "Id": str(a.guid),
        "Name": a.name,
        "Description": "",
        "Path": a.path,
        "Type": a.attribute_type,
        "TypeQualifier": a.type_qualifier,
        "DefaultUnitsName": UNIT_NAMES.get(a.units, a.units),
        "DefaultUnitsNameAbbreviation": a.units,
        "DisplayDigits": -5,
        "DataReferencePlugIn": "PI Point" if point is not None else "",
        "ConfigString": point.path if point is not None else "",
        "IsConfigurationItem": point is None,
        "IsExcluded": False,
        "IsHidden": False,
        "IsManualDataEntry": False,
        "HasChildren": False,
        "CategoryNames": list(a.categories),
        "Step": point.step if point is not None else False,
        "TraitName": "",
        "Links": links,
    }
    if point is not None:
        body["Span"] = point.span
        body["Zero"] = point.zero
    if data_reference and point is not None:
        body["DataReference"] = {"Name": "PI Point", "IsReferenceManaged": False, "PIPoint": point_json(ctx, point)}
    return body


def point_json(ctx: Ctx, p: Point) -> dict:
    web = ctx.emit(p.web_id)
    return {
        "WebId": web,
        "Id": p.id,
        "Name": p.name,
        "Path": p.path,
        "Descriptor": p.descriptor,
        "PointClass": "classic",
        "PointType": p.point_type,
        "DigitalSetName": p.digital_set,
        "EngineeringUnits": p.units,
        "Span": p.span,
        "Zero": p.zero,
        "Step": p.step,
        "Future": False,
        "DisplayDigits": -5,
        "Links": {
            "Self": ctx.link("points", web),
            "DataServer": ctx.link("dataservers", ctx.emit(ctx.plant.catalog.data_server_web_id)),
            "Attributes": ctx.link("points", web, "attributes"),
            "Value": ctx.link("streams", web, "value"),
            "EndValue": ctx.link("streams", web, "end"),
            "RecordedData": ctx.link("streams", web, "recorded"),
            "InterpolatedData": ctx.link("streams", web, "interpolated"),
            "SummaryData": ctx.link("streams", web, "summary"),
        },
    }


def point_attributes(p: Point, compression: Compression, interface_id: int) -> dict[str, object]:
    """Classic PI point attributes (lower-case names, as PI Web API returns them). `location1` is the interface
    id and `location4` the scan class, as UniInt interfaces use them; exception/compression ones from
    compression.py, consistent with the values the tag produces."""
    c = compression
    return {
        "tag": p.name,
        "pointid": p.id,
        "pointtype": p.point_type,
        "pointsource": p.pointsource,
        "location1": interface_id,
        "location4": c.location4,
        "scan": 1,
        "descriptor": p.descriptor,
        "engunits": p.units,
        "digitalset": p.digital_set,
        "zero": p.zero,
        "span": p.span,
        "step": int(p.step),
        "typicalvalue": p.zero + p.span / 2,
        "excdev": c.excdev,
        "excdevpercent": c.excdevpercent,
        "excmin": c.excmin_s,
        "excmax": c.excmax_s,
        "compressing": 1,
        "compdev": c.compdev,
        "compdevpercent": c.compdevpercent,
        "compmin": c.compmin_s,
        "compmax": c.compmax_s,
        "ptclassname": "classic",
        "archiving": 1,
        "shutdown": 1,
    }


def enumeration_set(ctx: Ctx, name: str) -> dict:
    cat = ctx.plant.catalog
    web = ctx.emit(cat.enumeration_set_web_id(name))
    return {
        "WebId": web,
        "Id": str(cat.enumeration_set_guid(name)),
        "Name": name,
        "Description": "System digital states" if name == "SYSTEM" else f"{name} states",
        "Path": f"\\\\{cat.data_server_name}\\{name}",
        "Links": {
            "Self": ctx.link("enumerationsets", web),
            "DataServer": ctx.link("dataservers", ctx.emit(cat.data_server_web_id)),
            "Values": ctx.link("enumerationsets", web, "enumerationvalues"),
        },
    }


def enumeration_values(ctx: Ctx, name: str) -> list[dict]:
    cat = ctx.plant.catalog
    set_guid = cat.enumeration_set_guid(name)
    out = []
    for label, code in cat.enumeration_states(name):
        guid = stable_guid(cat.seed, "enumvalue", name, code)
        path = f"{cat.data_server_name}\\{name}|{label}"
        web = ctx.emit(webid.encode_full("MV", (cat.data_server_guid, set_guid, guid), path, owner="D"))
        out.append(
            {
                "WebId": web,
                "Id": str(guid),
                "Name": label,
                "Description": "",
                "Value": code,
                "Path": f"\\\\{path}",
                "Parent": name,
                "Links": {"Self": ctx.link("enumerationvalues", web)},
            }
        )
    return out


def _now(ctx: Ctx) -> str:
    return format_time(ctx.plant.now())
