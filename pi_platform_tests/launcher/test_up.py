"""The README's two commands from a clean clone path, and one running `up` shared by the checks that need it:
the backfill lands every table and the terminal says so, a second `up` is refused without harm, and SIGTERM
stops everything in order (collector committed, nothing left listening).

The clean clone is a copy of the tracked and untracked-but-not-ignored files (`git clone` would miss the
uncommitted work under test): no .venv, .dagster_home or lake. This run's virtual environment is reused, with
the copy first on PYTHONPATH, instead of installing again: the install is what CI's fresh venv (`.ci/run`)
checks, and here it would cost minutes."""

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deltalake import DeltaTable

from pi_platform.defs.calendar.schedules import FIRST_RUN_ASSETS
from pi_platform.streaming.state import process_alive
from pi_platform.streaming.state import LOCK_FILE, read_status
from pi_platform_tests.launcher.helpers import PLACE_VARIABLES, Up, listening

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean") / "pi_platform"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


def clone_env(clone: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PLACE_VARIABLES and k != "PI_PLATFORM_REQUIRE_OS_PACKAGES"}
    return {**env, "PYTHONPATH": str(clone), **extra}


def test_readme_test_command_passes_without_a_browser(clone: Path):
    """Command 2's essence on a machine without Chromium: the browser test skips and names the package."""
    env = clone_env(clone, PATH=str(Path(sys.executable).parent))  # no /usr/bin: no chromium, whatever is installed
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "pi_platform_tests/batch/test_ui.py"], cwd=clone, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "SKIPPED" in result.stdout and "apt-get install -y chromium" in result.stdout


@pytest.fixture(scope="module")
def instance(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """Command 1 in the clean clone with the README's defaults (no DAGSTER_HOME, lake or state dir set), a small
    plant and a two-day range, running until the test that stops it."""
    up = Up(["--tags", "20", "--partition", "2024-03-02...2024-03-03", "--status-every", "5"], clone_env(clone),
            tmp_path_factory.mktemp("up") / "up.log", cwd=clone)
    try:
        up.wait_for("per table:", timeout_s=420)
        yield up
    finally:
        if up.process.poll() is None:
            up.process.send_signal(signal.SIGTERM)
            up.finish()


def test_backfill_lands_every_table_and_the_terminal_says_so(instance: Up, clone: Path):
    out = instance.output
    assert "succeeded; per table:" in out, out[-3000:]
    lake = clone / ".pi_platform" / "lake"
    for table in FIRST_RUN_ASSETS:
        assert DeltaTable(str(lake / table)).to_pyarrow_table().num_rows > 0, table
        assert f"  {table} " in out and "2/2 partitions done" in out
    values = DeltaTable(str(lake / "recorded_values")).to_pyarrow_table(columns=["name", "event_date"])
    assert {str(d) for d in values.column("event_date").unique().to_pylist()} == {"2024-03-02", "2024-03-03"}
    assert (clone / ".dagster_home" / "dagster.yaml").is_file()
    assert "RUN_SUCCESS" in (clone / ".dagster_home" / "service-logs" / "dagster.log").read_text()
    assert "rows written; runs: 1 success" in out  # one run for the range: single-run backfill policy
    assert "stream collector (pid" in out
    assert "Traceback" not in out and "Warning" not in out


def test_second_up_is_refused_and_leaves_the_first_alone(instance: Up, clone: Path, tmp_path: Path):
    collector = int((clone / ".pi_platform" / "stream" / LOCK_FILE).read_text())
    second = Up(["--no-run"], clone_env(clone), tmp_path / "second.log", cwd=clone)
    assert second.finish(timeout_s=60) == 2
    assert f"already running (pid {instance.process.pid}, UI at http://127.0.0.1:{instance.ui_port})" in second.output
    assert len(second.output.strip().splitlines()) == 1 and not listening(second.ui_port)
    assert instance.process.poll() is None and process_alive(collector)
    assert httpx.get(f"http://127.0.0.1:{instance.ui_port}/server_info", timeout=10).status_code == 200


def test_sigterm_stops_everything_in_order(instance: Up, clone: Path):
    state = clone / ".pi_platform" / "stream"
    collector = int((state / LOCK_FILE).read_text())
    instance.process.send_signal(signal.SIGTERM)
    assert instance.finish() == 0
    out = instance.output
    assert "SIGTERM received: stopping" in out and out.rstrip().endswith("stopped; nothing left running")
    assert out.index("stopping Dagster") < out.index("stopped the stream collector") < out.index("stopping the simulator")
    assert "Traceback" not in out
    assert not process_alive(collector)
    assert (read_status(state) or {}).get("state") == "stopped"  # it flushed, committed and said so
    assert not listening(instance.ui_port) and not listening(instance.sim_port)
