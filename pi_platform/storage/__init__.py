"""Delta Lake layer: idempotent writes (range overwrite, upsert, exactly-once append), validation, quarantine.

    store = DeltaStore("s3://lake/pi", {"AWS_ENDPOINT_URL": ..., "AWS_REGION": ...})
    store.overwrite_range("recorded_values", table, partition_column="event_date", start=d0, end=d1)
    store.upsert("event_frames", frames, keys=["web_id"])
    store.append_once("stream_values", batch, app_id="collector-1", version=seq)
"""

from pi_platform.storage.quarantine import read_quarantine, replace_quarantine
from pi_platform.storage.store import DeltaStore, StorageError, TableInfo
from pi_platform.storage.tables import TABLES, TableSpec, describe_tables
from pi_platform.storage.validation import Split, split_valid

__all__ = [
    "DeltaStore",
    "Split",
    "StorageError",
    "TABLES",
    "TableInfo",
    "TableSpec",
    "describe_tables",
    "read_quarantine",
    "replace_quarantine",
    "split_valid",
]
