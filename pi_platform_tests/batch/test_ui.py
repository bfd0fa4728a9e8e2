"""The Dagster UI, opened in headless Chromium, shows the PI asset graph and the check results of a
materialisation (a real dagster-webserver on loopback over the instance the run wrote to). Without Debian's
`chromium` the test skips and says so; CI installs it and makes that skip a failure."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from pi_platform_tests.batch.conftest import Runner


@pytest.fixture(scope="session")
def chromium(require_executable) -> str:
    return require_executable("chromium", package="chromium", alternatives=("chromium-browser",))


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


_ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"


def wait_until_loaded(url: str) -> None:
    """Until the webserver answers GraphQL with our assets (the code location loads after /server_info is up)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            reply = httpx.post(f"{url}/graphql", json={"query": _ASSETS_QUERY}, timeout=10).json()
            names = {node["assetKey"]["path"][-1] for node in reply.get("data", {}).get("assetNodes") or []}
            if "recorded_values" in names:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError("dagster-webserver did not load the pi_platform code location")


def rendered(chromium: str, url: str, profile, expected: list[str]) -> str:
    """The DOM once the single-page app shows every `expected` string. Chromium's virtual time lets the
    app's fetches complete; on a loaded machine a render can come back early, so up to three renders are
    tried, each with a longer budget. Each gets its own profile; its process group is killed afterwards."""
    dom = ""
    for attempt in range(3):
        dom = _render(chromium, url, profile / str(attempt), budget_ms=15_000 * (attempt + 1))
        if all(text in dom for text in expected):
            break
    return dom


def _render(chromium: str, url: str, profile, *, budget_ms: int) -> str:
    profile.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
         f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=120)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    return out


def test_ui_shows_asset_graph_and_check_results(chromium, plain_simulator, webserver, tmp_path):
    import dagster as dg

    home, url = webserver
    with dg.instance_for_test(temp_dir=str(home)) as instance:  # the instance the webserver reads
        runner = Runner(plain_simulator, tmp_path / "lake", instance)
        assert runner.materialize(["pi_points", "recorded_values", "event_frames", "alarms", "alarm_kpis"]).success
    wait_until_loaded(url)

    graph = [f">{asset}<" for asset in ("event_frames", "alarms", "alarm_kpis")]
    events = rendered(chromium, f"{url}/locations/pi_platform.defs.definitions/asset-groups/events", tmp_path / "chrome1", graph)
    for node in graph:
        assert node in events, node
    links = [f"/assets/{a}" for a in ("af_elements", "af_attributes", "pi_points", "recorded_values", "event_frames", "alarms", "alarm_kpis")]
    catalog = rendered(chromium, f"{url}/assets", tmp_path / "chrome2", links)
    for link in links:
        assert link in catalog, link

    names = ["keys_not_null_unique", "schema_matches", "no_quarantined_rows", "tags_with_data", "Succeeded"]
    checks = rendered(chromium, f"{url}/assets/recorded_values?view=checks", tmp_path / "chrome3", names)
    for name in names:
        assert name in checks, name
    assert checks.count("Succeeded") >= 6  # the six checks the materialisation evaluated
