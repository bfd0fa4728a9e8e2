"""Ground truth for the batch tables, computed in-process from the simulator's plant (not via HTTP)."""

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.simulator.plant import Plant
from pi_platform.value_columns import VALUE_SCHEMA, sort_values


def recorded(plant: Plant, start: datetime, end: datetime, names: list[str] | None = None) -> pa.Table:
    """Every point's recorded values in [start, end), as PI holds them at the plant's `now`."""
    points = [p for p in plant.points if names is None or p.name in names]
    table = pa.concat_tables([plant.recorded(p.web_id, start, end) for p in points])
    table = table.filter(pc.less(table["timestamp"], pa.scalar(end, table["timestamp"].type)))
    return sort_values(table.select(VALUE_SCHEMA.names).cast(VALUE_SCHEMA))


def points(plant: Plant) -> set[tuple]:
    return {(p.web_id, p.name, p.point_type, float(p.zero), float(p.span), p.units, p.digital_set or None) for p in plant.points}


def elements(plant: Plant) -> set[tuple]:
    return {(e.web_id, e.path, e.template, e.parent.path if e.parent else None) for e in plant.elements}


def attributes(plant: Plant) -> set[tuple]:
    return {(a.path, a.element.path, a.point.web_id if a.point else None) for a in plant.attributes}


def frames(plant: Plant, start: datetime, end: datetime) -> dict[str, dict]:
    """Event frames overlapping [start, end] as PI serves them at the plant's now, by WebID."""
    events, now_us = plant.events, plant.clock.now_us()
    out = {}
    for f in events.frames(start, end):
        out[events.web_id(f)] = {
            "name": f.name,
            "template_name": f.template.name,
            "start_time": f.start,
            "end_time": None if f.is_open(now_us) else f.end(now_us),
            "is_open": f.is_open(now_us),
            "severity": f.severity,
            "can_be_acknowledged": f.template.can_be_acknowledged,
            "is_acknowledged": f.is_acknowledged(now_us),
            "primary_element_web_id": f.element.web_id,
            "annotation_count": len(f.annotations_at(now_us)),
        }
    return out
