"""The maintenance job, on its hourly stream_values schedule, merges the collector's small files without changing a row."""

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable

from pi_platform.defs.definitions import defs
from pi_platform.defs.maintenance.definitions import delta_maintenance, stream_values_compaction_schedule
from pi_platform.defs.resources import DeltaStorageResource
from pi_platform.storage import DeltaStore
from pi_platform.streaming.messages import STREAM_SCHEMA
from pi_platform.streaming.sink import StreamSink
from pi_platform.value_columns import sort_values


def _batch(start_us: int, n: int) -> pa.Table:
    ts = pa.array(range(start_us, start_us + n), pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return pa.table({
        "web_id": ["W"] * n, "name": ["T"] * n, "timestamp": ts, "position": pa.array([0] * n, pa.int32()),
        "value": [float(i) for i in range(n)], "value_str": pa.nulls(n, pa.string()),
        "digital_state": pa.nulls(n, pa.string()), "digital_code": pa.nulls(n, pa.int32()),
        "is_system": [False] * n, "good": [True] * n, "questionable": [False] * n, "substituted": [False] * n,
        "annotated": [False] * n, "units": ["m"] * n, "received_at": ts,
    }, schema=STREAM_SCHEMA)


def test_compaction_job_reduces_files_and_keeps_rows(tmp_path):
    sink = StreamSink(DeltaStore(str(tmp_path / "lake")), "pi-platform-stream:collector")
    for i in range(12):  # a dozen one-second micro-batches
        sink.commit(_batch(1_700_000_000_000_000 + i * 1000, 100), version=i + 1)
    uri = str(tmp_path / "lake" / "stream_values")
    before = sort_values(DeltaTable(uri).to_pyarrow_table())
    files_before = len(DeltaTable(uri).file_uris())

    assert stream_values_compaction_schedule in defs.schedules
    assert stream_values_compaction_schedule.cron_schedule == "17 * * * *"
    run_config = stream_values_compaction_schedule.evaluate_tick(dg.build_schedule_context()).run_requests[0].run_config
    result = delta_maintenance.execute_in_process(run_config=run_config,
                                                  resources={"delta": DeltaStorageResource(root=str(tmp_path / "lake"))})
    assert result.success
    table = DeltaTable(uri)
    assert len(table.file_uris()) == 1 < files_before
    assert sort_values(table.to_pyarrow_table()).equals(before)
    assert table.transaction_version("pi-platform-stream:collector") == 12  # exactly-once state survives
    observations = [e for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
    assert observations
