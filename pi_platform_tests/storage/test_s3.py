"""Tables on an S3-compatible object store (moto's server on loopback) with delta-rs storage options."""

from datetime import timedelta

import pytest

from pi_platform.storage import DeltaStore, StorageError
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.storage.moto import moto_server, s3_client, storage_options
from pi_platform_tests.storage.test_store import DAY0, content, values_for, write_days


@pytest.fixture
def s3_endpoint():
    with moto_server() as endpoint:
        yield endpoint


def test_round_trip_through_s3(s3_endpoint):
    s3_client(s3_endpoint).create_bucket(Bucket="lake")
    store = DeltaStore("s3://lake/pi", storage_options(s3_endpoint))
    data = values_for(2)
    write_days(store, data, DAY0, 2)
    write_days(store, data, DAY0 + timedelta(days=1), 1)  # a rerun of one day, a predicate overwrite on S3
    keys = ["web_id", "timestamp", "position"]
    store.upsert("ef", data.slice(0, 5).select(keys + ["value"]), keys=keys)
    store.upsert("ef", data.slice(0, 5).select(keys + ["value"]), keys=keys)
    assert store.append_once("sv", data.slice(0, 4), app_id="c", version=1) is not None
    assert store.append_once("sv", data.slice(0, 4), app_id="c", version=1) is None

    reopened = DeltaStore("s3://lake/pi", storage_options(s3_endpoint))
    assert content(reopened, "rv").equals(sort_values(data.select(VALUE_SCHEMA.names)))
    assert reopened.read("ef").num_rows == 5 and reopened.read("sv").num_rows == 4
    assert reopened.info("rv").uri == "s3://lake/pi/rv"
    assert reopened.maintain("rv", retention_hours=0)["version"] > 0
    listed = s3_client(s3_endpoint).list_objects_v2(Bucket="lake", Prefix="pi/rv/_delta_log/")
    assert listed["KeyCount"] >= 2


def test_missing_bucket_is_one_clear_line(s3_endpoint):
    store = DeltaStore("s3://nope/pi", storage_options(s3_endpoint))
    with pytest.raises(StorageError) as failure:
        write_days(store, values_for(1), DAY0, 1)
    message = str(failure.value)
    assert "\n" not in message and "NoSuchBucket" in message and "PI_DELTA_ROOT" in message
    assert "testing" not in message  # no credential in the text
