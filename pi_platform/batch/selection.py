"""Which tags `recorded_values` reads: an explicit list, a PI name filter, or AF (template / attribute category).

Resolved against the live catalog at run time, so new tags matching a filter are picked up the next day.
The result carries zero and span per tag, which the range check needs. The Dagster run config that fills
these arguments is `defs/selection.TagSelection`; the benchmark calls `resolve` with none of them.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.client import PIWebAPIClient
from pi_platform.batch import inventory
from pi_platform.errors import ConfigError

SELECTED_COLUMNS = ["web_id", "name", "point_type", "zero", "span"]


@dataclass(frozen=True)
class TagFilter:
    """Filters combine (a tag must pass all that are set); nothing set = every tag."""

    tags: Sequence[str] = ()
    name_filter: str = "*"
    af_template: str | None = None
    attribute_category: str | None = None
    af_database: str | None = None


async def resolve(client: PIWebAPIClient, selection: TagFilter) -> pa.Table:
    """Selected points (SELECTED_COLUMNS), sorted by name; a ConfigError names tags that do not exist."""
    _, points = await inventory.data_server_points(client, selection.name_filter)
    points = points.select(SELECTED_COLUMNS)
    if selection.tags:
        wanted = pa.array(selection.tags, pa.string())
        unknown = pc.filter(wanted, pc.invert(pc.is_in(wanted, value_set=points["name"]))).to_pylist()
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise ConfigError(
                f"recorded_values tags not found on the data server (or excluded by name_filter "
                f"{selection.name_filter!r}): {shown}; fix the 'tags' config"
            )
        points = points.filter(pc.is_in(points["name"], value_set=wanted))
    if selection.af_template or selection.attribute_category:
        web_ids, names = await _af_references(client, selection)
        points = points.filter(pc.or_(pc.is_in(points["web_id"], value_set=web_ids), pc.is_in(points["name"], value_set=names)))
    return points.sort_by("name")


async def _af_references(client: PIWebAPIClient, selection: TagFilter) -> tuple[pa.Array, pa.Array]:
    """Point WebIDs (from attributes' Point links) and tag names (from PI Point config strings) referenced."""
    pairs = await inventory.element_items(client, selection.af_database, template_name=selection.af_template)
    per_element = await inventory.attribute_items(client, [element["WebId"] for _, element in pairs])
    web_ids, names = [], []
    for items in per_element:
        for item in items:
            if selection.attribute_category and selection.attribute_category not in (item.get("CategoryNames") or []):
                continue
            link = (item.get("Links") or {}).get("Point")
            if link:
                web_ids.append(link.rsplit("/", 1)[-1])
            elif item.get("DataReferencePlugIn") == "PI Point" and (name := inventory.point_name_of(item.get("ConfigString"))):
                names.append(name)
    return pa.array(web_ids, pa.string()), pa.array(names, pa.string())

