"""Mistakes are found before anything starts, one line each with its fix: `pi-platform up` exits 2 within
seconds, nothing listens, and no service log was written. Also the pieces the terminal is built from."""

import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from pi_platform.errors import PlatformError
from pi_platform.launcher.backfill import AssetProgress, Progress
from pi_platform.launcher.preflight import partition_days
from pi_platform.launcher.stream_status import status_line
from pi_platform.streaming.state import STATUS_FILE, write_json
from pi_platform_tests.launcher.helpers import free_port, isolated_env, listening

def other_free_ports() -> list[str]:
    """The simulator and viewer on free ports: their defaults may be taken on this machine (say, by a running
    `pi-platform up`), which would add a problem the case does not expect."""
    return ["--simulator-port", str(free_port()), "--viewer-port", str(free_port())]


# case -> (arguments, environment, number of problems, what the output must say)
CASES = {
    "reversed range": (["--partition", "2024-03-05...2024-03-01"], {}, 1, ["the range ends before it starts"]),
    "bad syntax": (["--partition", "03/03/2024"], {}, 1, ["use YYYY-MM-DD or YYYY-MM-DD...YYYY-MM-DD"]),
    "out of range": (["--partition", "1999-01-01"], {}, 1, ["partitions run from 2024-01-01 (PI_PARTITIONS_START)"]),
    "bad settings": ([], {"PI_STREAM_MODE": "bogus", "PI_DAILY_LAG_MINUTES": "abc"}, 2,
                     ["PI_STREAM_MODE='bogus'", "PI_DAILY_LAG_MINUTES='abc' is not a whole number"]),
    "PI unreachable": ([], {"PI_WEBAPI_URL": "http://127.0.0.1:{closed}/piwebapi"}, 1,
                       ["PI Web API http://127.0.0.1:{closed}/piwebapi: connection refused", "`pi-platform doctor`"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_preflight_reports_each_problem_in_one_line(case: str, tmp_path: Path):
    args, extra, count, expected = CASES[case]
    closed, ui_port = free_port(), free_port()
    env = isolated_env(tmp_path, **{k: v.format(closed=closed) for k, v in extra.items()})
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pi_platform.cli", "up", "--port", str(ui_port),
                             *other_free_ports(), *args],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == count and all(line.startswith("preflight: ") for line in lines), lines
    for fragment in expected:
        assert fragment.format(closed=closed) in result.stdout
    assert result.stderr.strip() == f"pi-platform up: {count} preflight problem(s) above; nothing was started"
    assert time.monotonic() - started < 30 and not listening(ui_port)
    assert not (tmp_path / "home" / "service-logs").exists()


def test_preflight_names_a_busy_port(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "pi_platform.cli", "up", "--port", str(port), *other_free_ports()],
                                env=isolated_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"preflight: Dagster UI port 127.0.0.1:{port} is in use: stop what listens there or pass --port" in result.stdout


def test_partition_spec_forms():
    today = date(2024, 3, 10)
    assert partition_days("2024-02-28...2024-03-01", today) == ["2024-02-28", "2024-02-29", "2024-03-01"]
    assert partition_days("2024-03-03", today) == ["2024-03-03"]
    assert partition_days(None, today) == ["2024-03-09"]
    assert partition_days("2024-03-10", today) == ["2024-03-10"]  # today is a partition (end_offset=1)
    with pytest.raises(PlatformError, match="to today"):
        partition_days("2024-03-11", today)


def test_progress_line_and_summary():
    progress = Progress("REQUESTED", ["STARTED"], {"alarms": AssetProgress(2, 1, 1, 0, 48),
                                                  "af_elements": AssetProgress(2, 0, 1, 1, 7)})
    assert progress.line() == ("backfill running: 2/4 asset partitions done, 1 failed, 1 in progress; "
                               "55 rows written; runs: 1 started")
    assert not progress.finished
    assert progress.summary(["af_elements", "alarms"]) == [
        "  af_elements  1/2 partitions done, 1 FAILED, 7 rows", "  alarms       1/2 partitions done, 48 rows"]


def test_stream_status_line_prints_what_is_there(tmp_path: Path):
    assert "not started yet" in status_line(tmp_path)
    write_json(tmp_path / STATUS_FILE, {"pid": 7, "state": "running", "heartbeat_at": 100.0})
    assert status_line(tmp_path, now=101.0) == "stream collector (pid 7): running"
    write_json(tmp_path / STATUS_FILE, {
        "pid": 7, "state": "running", "heartbeat_at": 100.0, "throughput": {"values_per_s": 1234.4},
        "total_rows_committed": 5000, "subscription": {"streams": 20}, "gaps": [{}, {}], "stale_tags": ["a"],
        "problems": [{"severity": "ERROR", "message": "bad tag X"}]})
    assert status_line(tmp_path, now=130.0) == ("stream collector (pid 7): silent for 30 s, 1,234 values/s, "
                                               "5,000 rows committed, 20 tags, 2 open gaps, 1 stale tags; "
                                               "1 problem(s), first: bad tag X")
