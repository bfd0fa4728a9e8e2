"""The ingestion page's stream health with sharded collectors (PI_STREAM_SHARDS=2): two real `pi-platform stream
--shard K/2` processes write their own status.json under `<state_dir>/shard-K-of-2/`, and `/api/stream` of a real
`pi-platform viewer` (started with PI_STREAM_SHARDS=2 and the unsharded root as --state-dir) reports both, each with
its own collector's pid, tags, channels and health, and the stream-wide verdict."""

import os
import signal
import subprocess
import sys

import httpx

from pi_platform.bench.chaos import CollectorProcess, wait_until
from pi_platform.simulator.config import SimulatorConfig
from pi_platform.simulator.server import SimulatorServer
from pi_platform.streaming.shards import all_shards
from pi_platform.streaming.state import write_subscription
from pi_platform_tests.viewer.conftest import SEED, TAGS, free_port

_ARGS = ["--batch-age", "0.3", "--heartbeat-rate", "1", "--snapshot-interval", "2"]


def test_stream_health_lists_every_shard_with_its_own_collectors_health(tmp_path):
    server = SimulatorServer(SimulatorConfig(seed=SEED, n_tags=TAGS, edge_tags=False, values_per_minute=60)).start()
    root, lake = tmp_path / "stream", tmp_path / "lake"
    shards = all_shards(2)
    web_ids = [p.web_id for p in server.plant.points if not p.name.startswith("EDGE.")][:8]
    owned = {s.label: [w for w in web_ids if s.owns(w)] for s in shards}
    assert all(owned.values()), owned  # each shard collects at least one tag
    collectors: list[CollectorProcess] = []
    viewer: subprocess.Popen | None = None
    log = tmp_path / "viewer.log"
    try:
        for shard in shards:
            write_subscription(shard.state_dir(root), web_ids, start="*")
            collectors.append(CollectorProcess(root, lake, server.base_url, _ARGS, shard=shard).start())
        wait_until(lambda: all(c.current() and (c.status().get("commits") or 0) >= 1 for c in collectors), 120,
                   "both shards' first commits")

        port = free_port()
        with open(log, "wb") as out:
            viewer = subprocess.Popen(
                [sys.executable, "-m", "pi_platform.cli", "viewer", "--port", str(port), "--delta-root", str(lake),
                 "--state-dir", str(root)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PI_STREAM_SHARDS": "2"})
        url = f"http://127.0.0.1:{port}/api/stream"

        def answer() -> dict | None:
            try:
                reply = httpx.get(url, timeout=10)
            except httpx.HTTPError:
                assert viewer.poll() is None, log.read_text()
                return None
            assert reply.status_code == 200, reply.text
            health = reply.json()
            return health if all(s.get("flowing") for s in health["shards"]) else None

        health = wait_until(answer, 90, "the viewer to report both shards flowing")
        assert health["shard_count"] == 2 and health["state_dir"] == str(root)
        assert health["flowing"] is True
        assert [s["shard"] for s in health["shards"]] == ["1/2", "2/2"]
        for shown, shard, collector in zip(health["shards"], shards, collectors, strict=True):
            status = collector.status()
            assert shown["state_dir"] == str(shard.state_dir(root)) == str(collector.state_dir)
            assert shown["state"] == "running" and shown["pid"] == status["pid"] == collector.process.pid
            assert shown["streams"] == len(owned[shard.label])
            assert {c["name"] for c in shown["channels"]} == {c["name"] for c in status["connections"]}
            assert shown["rows_committed"] > 0

        def gaps_agree() -> bool:
            """A gap the start opened may close between two reads, so compare only while the collectors' own
            counts hold still around the viewer's answer."""
            before = [len(c.status().get("gaps") or []) for c in collectors]
            shown = [s["open_gaps"] for s in httpx.get(url, timeout=10).json()["shards"]]
            after = [len(c.status().get("gaps") or []) for c in collectors]
            if before != after:
                return False
            assert shown == after, (shown, after)
            return True

        wait_until(gaps_agree, 30, "the collectors' gap counts to hold still around the viewer's answer")

        # a stopped shard is named in the stream-wide verdict; the other still flows
        assert collectors[1].terminate() == 0
        stopped = httpx.get(url, timeout=10).json()
        first, second = stopped["shards"]
        assert second["state"] == "stopped" and second["flowing"] is False
        assert first["state"] == "running"
        assert stopped["flowing"] is False and "shard 2/2" in stopped["reason"]
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        if viewer is not None and viewer.poll() is None:
            os.killpg(viewer.pid, signal.SIGKILL)
            viewer.wait(10)
        for collector in collectors:
            collector.cleanup()
        server.stop()
