"""Every Delta table the platform writes, batch and streaming: Arrow schema, partitioning, key and column docs.

Writers build exactly these schemas so a table never drifts between runs, and the README's table reference
is generated from the same objects (`describe_tables()`), so the documentation cannot disagree with the code.
"""

from dataclasses import dataclass

import pyarrow as pa

from pi_platform.value_columns import TIMESTAMP, VALUE_FIELDS

STRINGS = pa.list_(pa.string())


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    partition_column: str | None  # None: not partitioned (stream_values: live appends, compacted instead)
    keys: tuple[str, ...]
    description: str
    write: str  # how it is written: "overwrite range", "upsert by key", "exactly-once append"
    ordered_by: str | None = None  # compacted in order of this column (`storage/compaction.py`), not bin-packed

    def empty(self) -> pa.Table:
        return self.schema.empty_table()


def _f(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


_SNAPSHOT_DATE = _f("snapshot_date", pa.date32(), "plant's day (PI_PARTITION_TIMEZONE, default UTC) of the snapshot (partition)", nullable=False)

AF_ELEMENTS = TableSpec(
    "af_elements",
    pa.schema(
        [
            _SNAPSHOT_DATE,
            _f("web_id", pa.string(), "element WebID", nullable=False),
            _f("id", pa.string(), "element GUID"),
            _f("name", pa.string(), "element name", nullable=False),
            _f("description", pa.string(), "element description"),
            _f("path", pa.string(), "full AF path \\\\server\\database\\a\\b", nullable=False),
            _f("parent_path", pa.string(), "path of the parent element (null at the database root)"),
            _f("depth", pa.int32(), "1 for root elements", nullable=False),
            _f("database_path", pa.string(), "\\\\server\\database", nullable=False),
            _f("template_name", pa.string(), "element template"),
            _f("category_names", STRINGS, "element categories"),
            _f("has_children", pa.bool_(), "element has child elements"),
        ]
    ),
    "snapshot_date",
    ("snapshot_date", "web_id"),
    "Daily snapshot of the AF element hierarchy of every asset database.",
    "overwrite range",
)

AF_ATTRIBUTES = TableSpec(
    "af_attributes",
    pa.schema(
        [
            _SNAPSHOT_DATE,
            _f("web_id", pa.string(), "attribute WebID", nullable=False),
            _f("id", pa.string(), "attribute GUID"),
            _f("element_web_id", pa.string(), "owning element WebID", nullable=False),
            _f("element_path", pa.string(), "owning element path", nullable=False),
            _f("name", pa.string(), "attribute name", nullable=False),
            _f("path", pa.string(), "element path|attribute", nullable=False),
            _f("type", pa.string(), "value type (Double, Int32, String, EnumerationValue...)"),
            _f("type_qualifier", pa.string(), "enumeration set for EnumerationValue attributes"),
            _f("units", pa.string(), "default units abbreviation"),
            _f("data_reference", pa.string(), "data reference plug-in ('PI Point', 'Formula', '' for static)"),
            _f("config_string", pa.string(), "data reference configuration string"),
            _f("category_names", STRINGS, "attribute categories"),
            _f("is_hidden", pa.bool_(), "hidden attribute"),
            _f("is_excluded", pa.bool_(), "excluded attribute"),
            _f("point_name", pa.string(), "PI point tag the data reference points to"),
            _f("point_web_id", pa.string(), "that point's WebID, resolved against the point catalog"),
        ]
    ),
    "snapshot_date",
    ("snapshot_date", "web_id"),
    "Daily snapshot of element attributes with PI Point data references resolved to point WebIDs.",
    "overwrite range",
)

PI_POINTS = TableSpec(
    "pi_points",
    pa.schema(
        [
            _SNAPSHOT_DATE,
            _f("web_id", pa.string(), "point WebID", nullable=False),
            _f("id", pa.int64(), "point id on the data server"),
            _f("name", pa.string(), "tag", nullable=False),
            _f("path", pa.string(), "\\\\server\\tag"),
            _f("descriptor", pa.string(), "point descriptor"),
            _f("point_class", pa.string(), "point class (classic, base...)"),
            _f("point_type", pa.string(), "Float32, Float64, Int32, Digital, String...", nullable=False),
            _f("digital_set", pa.string(), "digital state set of Digital points"),
            _f("engineering_units", pa.string(), "engineering units"),
            _f("zero", pa.float64(), "bottom of the configured range"),
            _f("span", pa.float64(), "width of the configured range (top = zero + span)"),
            _f("step", pa.bool_(), "values are stepped (not interpolated)"),
            _f("future", pa.bool_(), "future-data point"),
            _f("display_digits", pa.int32(), "display digits"),
            _f("data_server", pa.string(), "data server name", nullable=False),
        ]
    ),
    "snapshot_date",
    ("snapshot_date", "web_id"),
    "Daily snapshot of the PI point catalog of the data server.",
    "overwrite range",
)

_VALUE_DOCS = {
    "web_id": "stream (point or attribute) WebID",
    "name": "tag or attribute name",
    "timestamp": "value time, UTC, microseconds",
    "position": "0-based order among the stream's values at the same timestamp (PI's order)",
    "value": "numeric value; digital states carry their code",
    "value_str": "String point value; digital state name",
    "digital_state": "digital or system state name (e.g. 'Shutdown', 'I/O Timeout')",
    "received_at": "when the collector received the value (channel) or read it (backfill, verification)",
    "digital_code": "digital or system state code",
    "is_system": "value is a system state (Good is false)",
    "good": "PI Good flag",
    "questionable": "PI Questionable flag",
    "substituted": "PI Substituted flag: the value was corrected after it was first written",
    "annotated": "value has an annotation",
    "units": "units abbreviation",
}

_DOCUMENTED_VALUES = [f.with_metadata({"doc": _VALUE_DOCS[f.name]}) for f in VALUE_FIELDS]

RECORDED_VALUES = TableSpec(
    "recorded_values",
    pa.schema(_DOCUMENTED_VALUES + [_f("event_date", pa.date32(), "plant's day (PI_PARTITION_TIMEZONE, default UTC) of timestamp (partition)", nullable=False)]),
    "event_date",
    ("web_id", "timestamp", "position"),
    "Every recorded value of the selected tags, as PI returned it (digital and system states, flags, "
    "several values at one timestamp).",
    "overwrite range",
)

STREAM_VALUES = TableSpec(
    "stream_values",
    pa.schema(_DOCUMENTED_VALUES + [_f("received_at", TIMESTAMP, _VALUE_DOCS["received_at"], nullable=False)]),
    None,
    ("web_id", "timestamp", "position"),
    "Live PI values from WebSocket channels, committed by `pi-platform stream` in exactly-once micro-batches "
    "(corrections replace the value PI replaced; gaps are backfilled from PI). Not partitioned; files are narrow in "
    "time, compacted with their neighbours in time hourly by `delta_maintenance` and by the collector itself every "
    "few hundred commits.",
    "exactly-once append (Delta app transaction = WAL offset); a correction rewrites the file holding the row it replaces",
    ordered_by="timestamp",
)

EVENT_FRAMES = TableSpec(
    "event_frames",
    pa.schema(
        [
            _f("web_id", pa.string(), "event frame WebID", nullable=False),
            _f("id", pa.string(), "event frame GUID"),
            _f("name", pa.string(), "event frame name", nullable=False),
            _f("description", pa.string(), "description"),
            _f("path", pa.string(), "AF path"),
            _f("template_name", pa.string(), "event frame template"),
            _f("category_names", STRINGS, "categories"),
            _f("start_time", TIMESTAMP, "start (a frame with a PI placeholder here is quarantined)", nullable=False),
            _f("end_time", TIMESTAMP, "end; null while the frame is open (PI's 9999-12-31 placeholder)"),
            _f("is_open", pa.bool_(), "frame still in progress", nullable=False),
            _f("severity", pa.string(), "None, Information, Warning, Minor, Major, Critical"),
            _f("can_be_acknowledged", pa.bool_(), "frame is acknowledgeable (an alarm)"),
            _f("is_acknowledged", pa.bool_(), "acknowledged"),
            _f("acknowledged_by", pa.string(), "who acknowledged"),
            _f("acknowledged_date", TIMESTAMP, "when acknowledged; null if never (PI's 1970-01-01 placeholder)"),
            _f("is_annotated", pa.bool_(), "has annotations"),
            _f("ref_element_web_ids", STRINGS, "referenced elements"),
            _f("primary_element_web_id", pa.string(), "first referenced element"),
            _f("start_date", pa.date32(), "plant's day (PI_PARTITION_TIMEZONE, default UTC) of start_time (partition)", nullable=False),
        ]
    ),
    "start_date",
    ("web_id",),
    "Event frames overlapping each day; open frames are updated by later runs until they close.",
    "upsert by key",
)

ALARMS = TableSpec(
    "alarms",
    pa.schema(
        [
            _f("web_id", pa.string(), "alarm event frame WebID", nullable=False),
            _f("name", pa.string(), "alarm name", nullable=False),
            _f("template_name", pa.string(), "alarm template (the alarm type)"),
            _f("element_web_id", pa.string(), "element raising the alarm"),
            _f("element_path", pa.string(), "its AF path (from the day's af_elements snapshot, when there is one)"),
            _f("source", pa.string(), "'template @ element path' (WebID if the path is unknown): the alarm point the KPIs count", nullable=False),
            _f("severity", pa.string(), "None..Critical"),
            _f("severity_level", pa.int32(), "0 (None) .. 5 (Critical)"),
            _f("start_time", TIMESTAMP, "alarm raised", nullable=False),
            _f("end_time", TIMESTAMP, "alarm cleared; null while active (PI's 9999-12-31 placeholder)"),
            _f("is_active", pa.bool_(), "still active", nullable=False),
            _f("is_acknowledged", pa.bool_(), "acknowledged"),
            _f("acknowledged_by", pa.string(), "who acknowledged"),
            _f("acknowledged_date", TIMESTAMP, "when acknowledged; null if never (PI's 1970-01-01 placeholder)"),
            _f("time_to_ack_s", pa.float64(), "acknowledged_date - start_time in seconds; null if unacknowledged or invalid (see field_issues)"),
            _f("field_issues", pa.string(), "fields left null because their value failed a check, as 'field: reason' (the alarm is kept)"),
            _f("annotation_count", pa.int32(), "number of annotations", nullable=False),
            _f("annotations", pa.string(), "annotations as a JSON list of {name, value, creator, creation_date} (PI placeholder dates as null)"),
            _f("start_date", pa.date32(), "plant's day (PI_PARTITION_TIMEZONE, default UTC) of start_time (partition)", nullable=False),
        ]
    ),
    "start_date",
    ("web_id",),
    "Alarm event frames (acknowledgeable frames) with severity, acknowledgement and annotations.",
    "upsert by key",
)

ALARM_KPIS = TableSpec(
    "alarm_kpis",
    pa.schema(
        [
            _f("event_date", pa.date32(), "plant's day (PI_PARTITION_TIMEZONE, default UTC) (partition)", nullable=False),
            _f("alarm_count", pa.int64(), "alarms raised during the day", nullable=False),
            _f("avg_per_10min", pa.float64(), "average alarms per 10-minute window (EEMUA target ~1)", nullable=False),
            _f("peak_per_10min", pa.int64(), "most alarms in one 10-minute window", nullable=False),
            _f("flood_windows", pa.int64(), "10-minute windows (aligned to midnight: each in one day) with more than 10 alarms", nullable=False),
            _f("flood_share", pa.float64(), "share of the day's windows in flood (ISA-18.2 target < 1%)", nullable=False),
            _f("top_bad_actors", pa.string(), "JSON list of the 10 most frequent sources with counts"),
            _f("top_bad_actor_share", pa.float64(), "share of all alarms from the top 10 sources"),
            _f("chattering_sources", pa.string(), "JSON list of sources whose chattering burst (3+ raised within 60 s) started this day, neighbouring days in view"),
            _f("chattering_count", pa.int64(), "number of chattering sources", nullable=False),
            _f("standing_count", pa.int64(), "alarms active at the end of the day and raised 24 h or more before it", nullable=False),
            _f("acknowledged_count", pa.int64(), "alarms of the day acknowledged", nullable=False),
            _f("median_time_to_ack_s", pa.float64(), "median time to acknowledge (alarms with a valid time_to_ack_s)"),
            _f("p90_time_to_ack_s", pa.float64(), "90th percentile time to acknowledge (same alarms)"),
        ]
    ),
    "event_date",
    ("event_date",),
    "Daily alarm-management KPIs after ISA-18.2 / EEMUA 191.",
    "overwrite range",
)

RECORDED_SUMMARIES = TableSpec(
    "recorded_summaries",
    pa.schema(
        [
            _f("web_id", pa.string(), "stream (point or attribute) WebID", nullable=False),
            _f("name", pa.string(), "tag or attribute name", nullable=False),
            _f("interval_start", TIMESTAMP, "interval start, UTC (PI's summary timestamp, timeType=EarliestTime)", nullable=False),
            _f("interval_end", TIMESTAMP, "interval end, UTC (exclusive)", nullable=False),
            _f("calculation_basis", pa.string(), "PI calculationBasis of average, minimum, maximum, std_dev, range, percent_good", nullable=False),
            _f("average", pa.float64(), "PI Average (time-weighted by default); null where PI gives its error value (no good data, non-numeric tag)"),
            _f("minimum", pa.float64(), "PI Minimum (time-weighted: includes the values interpolated at the interval's edges)"),
            _f("maximum", pa.float64(), "PI Maximum"),
            _f("std_dev", pa.float64(), "PI StdDev"),
            _f("range", pa.float64(), "PI Range (maximum - minimum)"),
            _f("count", pa.float64(), "good events in [interval_start, interval_end): PI Count, EventWeighted", nullable=False),
            _f("percent_good", pa.float64(), "PI PercentGood: % of the interval's time (time-weighted) or events (event-weighted) with good values", nullable=False),
            _f("units", pa.string(), "units abbreviation"),
            _f("event_date", pa.date32(), "plant's day (PI_PARTITION_TIMEZONE, default UTC) of interval_start (partition)", nullable=False),
        ]
    ),
    "event_date",
    ("web_id", "interval_start"),
    "Per tag and interval (PI_SUMMARY_INTERVAL, default 1 h), the summaries PI itself computes "
    "(streamsets/summary): the numbers PI clients show, not recomputed from raw values.",
    "overwrite range",
)

INTERPOLATED_VALUES = TableSpec(
    "interpolated_values",
    pa.schema(_DOCUMENTED_VALUES + [_f("event_date", pa.date32(), "plant's day (PI_PARTITION_TIMEZONE, default UTC) of timestamp (partition)", nullable=False)]),
    "event_date",
    ("web_id", "timestamp", "position"),
    "PI's interpolated values (streamsets/interpolated) every PI_INTERPOLATION_INTERVAL (default 1 h) of each "
    "day: linear between good values of continuous tags, held for stepped ones, system states where PI has "
    "them; `position` is always 0.",
    "overwrite range",
)

QUARANTINE = TableSpec(
    "quarantine",
    pa.schema(
        [
            _f("table_name", pa.string(), "table the row was meant for (partition)", nullable=False),
            _f("event_date", pa.date32(), "partition day of the run that met the row (partition)", nullable=False),
            _f("web_id", pa.string(), "stream or frame WebID when known"),
            _f("reason", pa.string(), "why the row was refused", nullable=False),
            _f("raw", pa.string(), "the item as JSON, exactly as received or as built", nullable=False),
            _f("detected_at", TIMESTAMP, "when it was refused", nullable=False),
            _f("run_id", pa.string(), "Dagster run (or writer) that refused it"),
        ]
    ),
    "event_date",
    ("table_name", "event_date", "web_id", "reason"),
    "Rows refused by validation or by PI (per-value Errors), with the reason and the raw payload.",
    "overwrite range per table",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (AF_ELEMENTS, AF_ATTRIBUTES, PI_POINTS, RECORDED_VALUES, STREAM_VALUES, EVENT_FRAMES, ALARMS, ALARM_KPIS,
                 RECORDED_SUMMARIES, INTERPOLATED_VALUES, QUARANTINE)
}


def describe_tables() -> str:
    """Markdown reference of every table (pasted into the README)."""
    out: list[str] = []
    for spec in TABLES.values():
        out.append(f"### `{spec.name}`\n\n{spec.description}\n")
        layout = f"Partitioned by `{spec.partition_column}`" if spec.partition_column else "Not partitioned"
        out.append(f"{layout}; key ({', '.join(spec.keys)}); written by {spec.write}.\n")
        out.append("| column | type | description |\n|---|---|---|")
        for fld in spec.schema:
            doc = (fld.metadata or {}).get(b"doc", b"").decode()
            out.append(f"| `{fld.name}` | {fld.type}{'' if fld.nullable else ' not null'} | {doc} |")
        out.append("")
    return "\n".join(out)
