"""Reading PI's inventory (points, AF elements and attributes) into Arrow tables, shared by the snapshot
assets and by the tag selection of `recorded_values`, so both see the same catalog the same way."""

import asyncio
from collections.abc import Sequence
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.client import PIWebAPIClient
from pi_platform.client.objects import attributes_table, elements_table, points_table
from pi_platform.storage.tables import AF_ATTRIBUTES, AF_ELEMENTS, PI_POINTS, TableSpec


def conform(table: pa.Table, spec: TableSpec, renames: dict[str, str] | None = None, **columns: object) -> pa.Table:
    """Shape `table` into `spec.schema`: rename, add the given columns (arrays or scalars), fill the rest
    with nulls, cast. Writers call this so the stored schema is the declared one whatever the server sent."""
    n = table.num_rows
    source = table.rename_columns([(renames or {}).get(c, c) for c in table.column_names])
    arrays = []
    for fld in spec.schema:
        if fld.name in columns:
            value = columns[fld.name]
            array = value if isinstance(value, (pa.Array, pa.ChunkedArray)) else pa.array([value] * n, fld.type)
        elif fld.name in source.column_names:
            array = source[fld.name]
        else:
            array = pa.nulls(n, fld.type)
        arrays.append(array.cast(fld.type) if array.type != fld.type else array)
    return pa.Table.from_arrays(arrays, schema=spec.schema)


async def data_server_points(client: PIWebAPIClient, name_filter: str = "*") -> tuple[str, pa.Table]:
    """(data server name, points table) for the configured data server."""
    server = await client.data_server()
    items = await client.points(server["WebId"], name_filter=name_filter)
    return server["Name"], points_table(items)


def points_snapshot(server_name: str, points: pa.Table, day: date) -> pa.Table:
    return conform(points, PI_POINTS, {"digital_set_name": "digital_set"}, snapshot_date=day, data_server=server_name)


async def databases(client: PIWebAPIClient, only: str | None = None) -> list[dict]:
    """Asset databases of every asset server (or only the one named `only`)."""
    found: list[dict] = []
    for server in await client.asset_servers():
        for database in await client.asset_databases(server["WebId"]):
            if only is None or database.get("Name", "").lower() == only.lower():
                found.append(database)
    return found


async def element_items(client: PIWebAPIClient, database_names: str | None = None, *, template_name: str | None = None) -> list[tuple[dict, dict]]:
    """(database, element) pairs for the full hierarchy of each database."""
    out: list[tuple[dict, dict]] = []
    for database in await databases(client, database_names):
        for element in await client.elements(database["WebId"], search_full_hierarchy=True, template_name=template_name):
            out.append((database, element))
    return out


def elements_snapshot(pairs: Sequence[tuple[dict, dict]], day: date) -> pa.Table:
    table = elements_table([element for _, element in pairs])
    paths = table["path"].to_pylist()
    parents = [p.rsplit("\\", 1)[0] for p in paths]
    db_paths = [db["Path"] for db, _ in pairs]
    return conform(
        table,
        AF_ELEMENTS,
        snapshot_date=day,
        parent_path=pa.array([None if parent == db else parent for parent, db in zip(parents, db_paths)], pa.string()),
        depth=pa.array([p[len(db) :].count("\\") for p, db in zip(paths, db_paths)], pa.int32()),
        database_path=pa.array(db_paths, pa.string()),
    )


async def attribute_items(client: PIWebAPIClient, element_web_ids: Sequence[str]) -> list[list[dict]]:
    """Attributes of each element, fetched concurrently (the client bounds concurrency and rate)."""
    return list(await asyncio.gather(*(client.attributes(web_id) for web_id in element_web_ids)))


def point_name_of(config_string: str | None) -> str | None:
    r"""Tag of a PI Point data reference config string `\\server\tag;UOM=..` (None for other references)."""
    if not config_string or not config_string.startswith("\\\\"):
        return None
    return config_string.split(";", 1)[0].rsplit("\\", 1)[-1] or None


def attributes_snapshot(elements: pa.Table, per_element: Sequence[list[dict]], points: pa.Table, day: date) -> pa.Table:
    """Attributes with `point_web_id` resolved: from the attribute's Point link, else by tag name in the catalog."""
    counts = [len(items) for items in per_element]
    table = attributes_table([item for items in per_element for item in items])
    element_web_ids = pa.array([w for w, n in zip(elements["web_id"].to_pylist(), counts) for _ in range(n)], pa.string())
    element_paths = pa.array([p for p, n in zip(elements["path"].to_pylist(), counts) for _ in range(n)], pa.string())
    is_point = pc.equal(pc.fill_null(table["data_reference"], ""), "PI Point")
    names = pa.array([point_name_of(c) for c in table["config_string"].to_pylist()], pa.string())
    names = pc.if_else(is_point, names, pa.scalar(None, pa.string()))
    by_name = pc.index_in(names, value_set=points["name"])
    from_catalog = pc.take(points["web_id"], by_name)
    linked = pc.if_else(is_point, table["point_web_id"], pa.scalar(None, pa.string()))
    return conform(
        table,
        AF_ATTRIBUTES,
        {"default_units": "units"},
        snapshot_date=day,
        element_web_id=element_web_ids,
        element_path=element_paths,
        point_name=names,
        point_web_id=pc.coalesce(linked, from_catalog),
    )
