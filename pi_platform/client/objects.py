"""PI Web API object lists (AF elements, attributes, points, event frames) -> typed Arrow tables.

These are small compared to values (thousands of rows, not millions), so clarity wins over speed here:
each table is a declared list of columns with its JSON key and Arrow type, so the Delta schema downstream
is stable even when a server omits a field. Column names are snake_case; `web_id` is always first.
Event frames still in progress have PI's year-9999 EndTime; they get `end_time = null` and `is_open = true`
so nobody mistakes 9999-12-31 for a real end.
"""

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.client.columns import parse_timestamps
from pi_platform.value_columns import TIMESTAMP

Column = tuple[str, str, pa.DataType]  # (column name, JSON key, type)

ELEMENT_COLUMNS: list[Column] = [
    ("web_id", "WebId", pa.string()),
    ("id", "Id", pa.string()),
    ("name", "Name", pa.string()),
    ("description", "Description", pa.string()),
    ("path", "Path", pa.string()),
    ("template_name", "TemplateName", pa.string()),
    ("has_children", "HasChildren", pa.bool_()),
    ("category_names", "CategoryNames", pa.list_(pa.string())),
]

ATTRIBUTE_COLUMNS: list[Column] = [
    ("web_id", "WebId", pa.string()),
    ("id", "Id", pa.string()),
    ("name", "Name", pa.string()),
    ("description", "Description", pa.string()),
    ("path", "Path", pa.string()),
    ("type", "Type", pa.string()),
    ("type_qualifier", "TypeQualifier", pa.string()),
    ("default_units", "DefaultUnitsNameAbbreviation", pa.string()),
    ("data_reference", "DataReferencePlugIn", pa.string()),
    ("config_string", "ConfigString", pa.string()),
    ("is_hidden", "IsHidden", pa.bool_()),
    ("is_excluded", "IsExcluded", pa.bool_()),
    ("category_names", "CategoryNames", pa.list_(pa.string())),
    ("step", "Step", pa.bool_()),
    ("span", "Span", pa.float64()),
    ("zero", "Zero", pa.float64()),
]

POINT_COLUMNS: list[Column] = [
    ("web_id", "WebId", pa.string()),
    ("id", "Id", pa.int64()),
    ("name", "Name", pa.string()),
    ("path", "Path", pa.string()),
    ("descriptor", "Descriptor", pa.string()),
    ("point_class", "PointClass", pa.string()),
    ("point_type", "PointType", pa.string()),
    ("digital_set_name", "DigitalSetName", pa.string()),
    ("engineering_units", "EngineeringUnits", pa.string()),
    ("span", "Span", pa.float64()),
    ("zero", "Zero", pa.float64()),
    ("step", "Step", pa.bool_()),
    ("future", "Future", pa.bool_()),
]

EVENT_FRAME_COLUMNS: list[Column] = [
    ("web_id", "WebId", pa.string()),
    ("id", "Id", pa.string()),
    ("name", "Name", pa.string()),
    ("description", "Description", pa.string()),
    ("path", "Path", pa.string()),
    ("template_name", "TemplateName", pa.string()),
    ("category_names", "CategoryNames", pa.list_(pa.string())),
    ("start_time", "StartTime", pa.string()),  # parsed below
    ("end_time", "EndTime", pa.string()),  # parsed below; null while open
    ("severity", "Severity", pa.string()),
    ("can_be_acknowledged", "CanBeAcknowledged", pa.bool_()),
    ("is_acknowledged", "IsAcknowledged", pa.bool_()),
    ("acknowledged_by", "AcknowledgedBy", pa.string()),
    ("acknowledged_date", "AcknowledgedDate", pa.string()),  # parsed below
    ("is_annotated", "IsAnnotated", pa.bool_()),
    ("ref_element_web_ids", "RefElementWebIds", pa.list_(pa.string())),
]

_TIME_COLUMNS = ("start_time", "end_time", "acknowledged_date")
OPEN_YEAR = "9999"


def records_table(items: Sequence[dict[str, Any]], columns: list[Column]) -> pa.Table:
    """Select and type the declared fields; missing fields are null, unknown fields are ignored."""
    arrays = [pa.array([item.get(key) for item in items], type_) for _, key, type_ in columns]
    return pa.Table.from_arrays(arrays, names=[name for name, _, _ in columns])


def elements_table(items: Sequence[dict]) -> pa.Table:
    return records_table(items, ELEMENT_COLUMNS)


def attributes_table(items: Sequence[dict]) -> pa.Table:
    """Attributes plus `point_web_id` where the PI Point data reference is resolved (Links.Point)."""
    table = records_table(items, ATTRIBUTE_COLUMNS)
    point_links = [((item.get("Links") or {}).get("Point") or "").rsplit("/", 1)[-1] or None for item in items]
    return table.append_column("point_web_id", pa.array(point_links, pa.string()))


def points_table(items: Sequence[dict]) -> pa.Table:
    return records_table(items, POINT_COLUMNS)


def event_frames_table(items: Sequence[dict]) -> pa.Table:
    table = records_table(items, EVENT_FRAME_COLUMNS)
    is_open = pc.fill_null(pc.starts_with(table["end_time"], OPEN_YEAR), False)
    for name in _TIME_COLUMNS:
        strings = table[name].combine_chunks()
        if name == "end_time":
            strings = pc.if_else(is_open, pa.scalar(None, pa.string()), strings)
        parsed, _ = parse_timestamps(strings.to_pylist())
        table = table.set_column(table.schema.get_field_index(name), name, parsed.cast(TIMESTAMP))
    return table.append_column("is_open", is_open)


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """pandas view with tz-aware timestamps and nullable dtypes (no float coercion of null ints/bools)."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)
