"""A full lake disk: the collector says so in one line per retry and in its status, keeps what it received,
and resumes by itself once there is room, losing nothing.

The lake is a real size-limited filesystem (a 4 MiB tmpfs) filled up while the collector runs, so delta-rs
meets a real ENOSPC; mounting needs root, which CI has (`PI_PLATFORM_REQUIRE_OS_PACKAGES` makes a refused
mount a failure there, as for a missing OS package).
"""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from streaming_helpers import doubled_keys, mismatches, wait_until

from pi_platform import settings
from pi_platform.simulator.clock import to_us
from pi_platform.streaming.state import CURSORS_FILE, read_json, write_subscription


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"needs permission to mount a size-limited tmpfs (root): {mounted.stderr.strip()}"
        if settings.require_os_packages():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte but a few KiB: the next Delta file cannot be written."""
    filler = disk / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_lake_is_reported_waited_out_and_nothing_is_lost(make_simulator, collector_process, small_disk,
                                                                tmp_path):
    sim = make_simulator(n_tags=6, values_per_minute=300)
    web_ids = [p.web_id for p in sim.plant.points if not p.name.startswith("EDGE.")][:4]
    state_dir, lake = tmp_path / "state", small_disk / "lake"
    write_subscription(state_dir, web_ids, start="*-1m")
    collector = collector_process(state_dir, lake, sim.base_url, ["--batch-age", "0.3", "--compact-every", "0"]).start()
    wait_until(lambda: (collector.status().get("commits") or 0) >= 2, 60, "first commits")

    filler = _fill(small_disk)
    def lake_full() -> bool:
        return any(p["kind"] == "commit" and p["severity"] == "ERROR" for p in collector.status().get("problems", []))
    wait_until(lake_full, 60, "the full lake reported in the status")
    time.sleep(3)  # values keep arriving while the disk is full
    assert collector.process.poll() is None  # still running, holding what it received
    log = collector.log.read_text()
    assert "Traceback" not in log
    failing = [line for line in log.splitlines() if "micro-batch failed" in line]
    assert failing and all("No space left" in line or "os error 28" in line.lower() for line in failing)

    filler.unlink()
    commits = collector.status()["commits"]
    wait_until(lambda: collector.status()["commits"] > commits and not lake_full(), 90, "commits resuming")
    frozen = sim.plant.clock.now()
    httpx.post(f"{sim.admin_url}/clock", json={"now": frozen.isoformat()}).raise_for_status()
    since = {k: int(v) for k, v in read_json(state_dir / CURSORS_FILE).items()}
    windows = {w: (since[w], to_us(frozen)) for w in web_ids}
    wait_until(lambda: not mismatches(sim.plant, lake, windows, frozen), 60, "the table equal to ground truth")
    assert collector.terminate() == 0
    assert mismatches(sim.plant, lake, windows, frozen) == [] and doubled_keys(lake) == 0
