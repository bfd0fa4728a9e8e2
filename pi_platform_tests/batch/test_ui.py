"""The Dagster UI, opened in headless Chromium, shows the PI asset graph and the check results of a
materialisation (a real dagster-webserver on loopback over the instance the run wrote to)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from pi_platform_tests.batch.conftest import Runner

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def webserver(tmp_path):
    """dagster-webserver over an instance in tmp_path/home; its process group is killed at teardown."""
    home, port = tmp_path / "home", free_port()
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    process = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
         "-m", "pi_platform.defs.definitions"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        yield home, f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("dagster-webserver did not come up")


def rendered(url: str, profile) -> str:
    """The DOM after the single-page app has rendered (virtual time lets its fetches complete). Each call
    gets its own profile directory and its whole process group is killed afterwards."""
    assert CHROMIUM, "headless browser test needs Debian's chromium: apt-get install -y chromium"
    profile.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=15000", "--dump-dom", url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=90)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    return out


def test_ui_shows_asset_graph_and_check_results(plain_simulator, webserver, tmp_path):
    import dagster as dg

    home, url = webserver
    runner = Runner(plain_simulator, tmp_path / "lake", dg.DagsterInstance.local_temp(str(home)))
    assert runner.materialize(["pi_points", "recorded_values", "event_frames", "alarms", "alarm_kpis"]).success
    wait_until_up(url)

    events = rendered(f"{url}/locations/pi_platform.defs.definitions/asset-groups/events", tmp_path / "chrome1")
    for asset in ("event_frames", "alarms", "alarm_kpis"):
        assert f">{asset}<" in events, asset
    catalog = rendered(f"{url}/assets", tmp_path / "chrome2")
    for asset in ("af_elements", "af_attributes", "pi_points", "recorded_values", "event_frames", "alarms", "alarm_kpis"):
        assert f"/assets/{asset}" in catalog, asset

    checks = rendered(f"{url}/assets/recorded_values?view=checks", tmp_path / "chrome3")
    for check in ("keys_not_null_unique", "schema_matches", "no_quarantined_rows", "tags_with_data"):
        assert check in checks, check
    assert checks.count("Succeeded") >= 6  # the six checks the materialisation evaluated
