"""The AF hierarchy as the newest `af_elements` / `af_attributes` snapshot holds it, one level at a time.

The tree is opened lazily (children of one element, paged), so a database of 100k elements costs what one
level costs; search is a substring match on name and path inside the scan.
"""

from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import AF_ATTRIBUTES, AF_ELEMENTS
from pi_platform.viewer.lake import Page, contains, latest_partition, scan
from pi_platform.viewer.values import latest_values

ELEMENT_COLUMNS = ["web_id", "name", "path", "parent_path", "depth", "template_name", "description", "has_children"]
ATTRIBUTE_COLUMNS = ["web_id", "name", "path", "element_path", "type", "units", "data_reference", "point_name", "point_web_id"]


def _snapshot(store: DeltaStore, table: str) -> tuple[ds.Expression | None, str | None]:
    day = latest_partition(store, table)
    if day is None:
        return None, None
    return ds.field("snapshot_date") == pa.scalar(day), day.isoformat()


def elements(store: DeltaStore, page: Page, *, parent: str | None = None, search: str | None = None) -> dict[str, Any]:
    """Children of `parent` (the database roots when None), or, with `search`, every element whose name or
    path contains it; sorted by path."""
    newest, day = _snapshot(store, AF_ELEMENTS.name)
    if newest is None:
        return {**page.of(AF_ELEMENTS.schema.empty_table().select(ELEMENT_COLUMNS), []), "snapshot_date": None}
    if search:
        where = contains("name", search) | contains("path", search)
    elif parent:
        where = ds.field("parent_path") == parent
    else:
        where = ds.field("parent_path").is_null()
    rows = scan(store, AF_ELEMENTS.name, filter=newest & where, columns=ELEMENT_COLUMNS)
    return {**page.of(rows, [("path", "ascending")]), "snapshot_date": day}


def attributes(store: DeltaStore, element_web_id: str, page: Page) -> dict[str, Any]:
    """An element's attributes with units and, for PI Point attributes, the newest stored value."""
    newest, day = _snapshot(store, AF_ATTRIBUTES.name)
    if newest is None:
        return {**page.of(AF_ATTRIBUTES.schema.empty_table().select(ATTRIBUTE_COLUMNS), []), "snapshot_date": None}
    rows = scan(store, AF_ATTRIBUTES.name, filter=newest & (ds.field("element_web_id") == element_web_id),
                columns=ATTRIBUTE_COLUMNS)
    shown = page.of(rows, [("name", "ascending")])
    values = latest_values(store, sorted({r["point_web_id"] for r in shown["rows"] if r["point_web_id"]}))
    for row in shown["rows"]:
        row["latest"] = values.get(row["point_web_id"]) if row["point_web_id"] else None
    return {**shown, "snapshot_date": day}
