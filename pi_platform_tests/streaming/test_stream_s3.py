"""Streaming into an object store: the collector honours PI_DELTA_STORAGE_OPTIONS like the batch assets do.

It once built its Delta store without the storage options (settings were read in ten places); here the
collector process gets the lake only through the environment, as the Dagster sensor starts it, and writes to
an S3-compatible server (moto) on loopback.
"""

import json
import time

import httpx
from streaming_helpers import mismatches, wait_until

from pi_platform.simulator.clock import to_us
from pi_platform.streaming.state import CURSORS_FILE, read_json, write_subscription
from pi_platform_tests.storage.moto import moto_server, s3_client, storage_options


def test_collector_commits_to_s3_with_storage_options_from_settings(make_simulator, collector_process, tmp_path,
                                                                    monkeypatch):
    with moto_server() as endpoint:
        s3_client(endpoint).create_bucket(Bucket="lake")
        options = storage_options(endpoint)
        monkeypatch.setenv("PI_DELTA_STORAGE_OPTIONS", json.dumps(options))
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name, raising=False)  # only the storage options may lead the collector there
        sim = make_simulator(n_tags=6, values_per_minute=120)
        web_ids = [p.web_id for p in sim.plant.points if not p.name.startswith("EDGE.")][:4]
        state_dir, lake = tmp_path / "state", "s3://lake/pi"
        write_subscription(state_dir, web_ids, start="*-2m")
        collector = collector_process(state_dir, lake, sim.base_url, ["--batch-age", "0.3"]).start()
        wait_until(lambda: (collector.status().get("commits") or 0) >= 3, 90, "commits to S3")
        assert collector.status()["table_uri"] == "s3://lake/pi/stream_values"
        time.sleep(1)

        frozen = sim.plant.clock.now()
        httpx.post(f"{sim.admin_url}/clock", json={"now": frozen.isoformat()}).raise_for_status()
        since = {k: int(v) for k, v in read_json(state_dir / CURSORS_FILE).items()}
        windows = {w: (since[w], to_us(frozen)) for w in web_ids}
        wait_until(lambda: not mismatches(sim.plant, lake, windows, frozen, options), 60, "S3 table = ground truth")
        assert collector.terminate() == 0
        assert mismatches(sim.plant, lake, windows, frozen, options) == []
        listed = s3_client(endpoint).list_objects_v2(Bucket="lake", Prefix="pi/stream_values/_delta_log/")
        assert listed["KeyCount"] >= 3
