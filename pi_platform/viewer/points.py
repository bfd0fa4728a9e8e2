"""PI points for the live monitor's tag picker: the newest `pi_points` snapshot, searched by tag name."""

from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import PI_POINTS
from pi_platform.viewer.lake import Page, contains, latest_partition, scan

POINT_COLUMNS = ["web_id", "name", "descriptor", "point_type", "digital_set", "engineering_units"]


def points(store: DeltaStore, page: Page, search: str | None = None) -> dict[str, Any]:
    """Points whose name contains `search` (all when empty), by name."""
    day = latest_partition(store, PI_POINTS.name)
    if day is None:
        return page.of(PI_POINTS.schema.empty_table().select(POINT_COLUMNS), [])
    where = ds.field("snapshot_date") == pa.scalar(day)
    if search:
        where &= contains("name", search)
    return page.of(scan(store, PI_POINTS.name, filter=where, columns=POINT_COLUMNS), [("name", "ascending")])
