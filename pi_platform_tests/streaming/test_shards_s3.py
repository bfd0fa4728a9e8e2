"""Sharded collectors on object storage, through a re-shard and concurrent kill -9: one collector streams to S3
(moto) and stops, two shards take over the same tags on the same table with S3 conditional writes
(`conditional_put: etag`), and both are killed with SIGKILL at once, twice, while they commit, and restarted.
The table equals the simulator's ground truth from the first collector's start to the end: no key doubled,
nothing missing, across the hand-over and the kills. (`pi-platform bench chaos --shards N` is the long version
with every other fault too, on a local lake.)"""

import json

import httpx
from deltalake import DeltaTable
from streaming_helpers import CollectorProcess, wait_until

from pi_platform.bench.chaos import compare
from pi_platform.simulator.clock import to_us
from pi_platform.streaming.shards import all_shards
from pi_platform.streaming.state import CURSORS_FILE, read_json, read_status, write_subscription
from pi_platform_tests.storage.moto import moto_server, s3_client, storage_options

_ARGS = ["--batch-age", "0.3", "--heartbeat-rate", "1"]


def test_two_shards_on_s3_take_over_from_one_collector_and_lose_nothing_to_concurrent_kill9(make_simulator, tmp_path, monkeypatch):
    with moto_server() as endpoint:
        s3_client(endpoint).create_bucket(Bucket="lake")
        options = {**storage_options(endpoint), "conditional_put": "etag"}
        monkeypatch.setenv("PI_DELTA_STORAGE_OPTIONS", json.dumps(options))
        sim = make_simulator(n_tags=10, values_per_minute=300)
        web_ids = [p.web_id for p in sim.plant.points if not p.name.startswith("EDGE.")][:8]
        root, lake = tmp_path / "state", "s3://lake/pi"
        started: list[CollectorProcess] = []
        try:
            write_subscription(root, web_ids, start="*-1m")
            single = CollectorProcess(root, lake, sim.base_url, _ARGS).start()
            started.append(single)
            wait_until(lambda: (single.status().get("commits") or 0) >= 2, 90, "the single collector's commits")
            assert single.terminate() == 0  # SIGTERM: it drains its WAL and commits, so the layout may change

            shards: list[CollectorProcess] = []
            for shard in all_shards(2):
                write_subscription(shard.state_dir(root), web_ids, start="*-1m")
                shards.append(CollectorProcess(root, lake, sim.base_url, _ARGS, shard=shard).start())
            started.extend(shards)
            def committing() -> bool:
                return all(s.current() and (s.status().get("commits") or 0) >= 1 for s in shards)

            for kill in range(2):  # both at once, while they commit (not while they start)
                wait_until(committing, 90, f"both shards committing to S3 before kill {kill + 1}")
                for process in shards:
                    process.kill9()
                shards = [process.restarted() for process in shards]
                started.extend(shards)
            wait_until(committing, 90, "both shards committing again after the kills")

            frozen = sim.plant.clock.now()
            httpx.post(f"{sim.admin_url}/clock", json={"now": frozen.isoformat()}).raise_for_status()
            since = {w: int(s) for w, s in read_json(root / CURSORS_FILE).items()}  # the first collector's starts
            windows = {w: (since[w], to_us(frozen)) for w in web_ids}

            def clean() -> dict | None:
                if any(s.status().get("gaps") for s in shards):
                    return None
                figures = compare(sim.plant, lake, windows, frozen, options)
                return figures if figures["missing"] == figures["doubled"] == figures["extra"] == 0 else None

            figures = wait_until(clean, 90, "S3 table = ground truth across the hand-over")
            assert figures["expected"] > 0 and figures["committed"] == figures["expected"]
            assert figures["differing"] == 0
            assert [s.terminate() for s in shards] == [0, 0]

            table = DeltaTable(f"{lake}/stream_values", storage_options=options)
            for process in [single, *shards]:
                app_id = read_status(process.state_dir)["app_id"]
                assert (table.transaction_version(app_id) or 0) > 0, app_id
            owned = [set(read_json(s.state_dir / CURSORS_FILE) or {}) for s in shards]
            assert owned[0] | owned[1] == set(web_ids) and not owned[0] & owned[1]
        finally:
            for process in started:
                process.cleanup()
