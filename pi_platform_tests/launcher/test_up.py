"""The README's main command, end to end: `pi-platform up` starts the simulator and Dagster (webserver +
daemon), launches a two-day backfill through the same GraphQL mutation the UI's Materialize button sends, the
daemon runs it, and every batch table lands in Delta for both days."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from pi_platform.defs.calendar.schedules import DAILY_ASSETS
from pi_platform.errors import PlatformError
from pi_platform.launcher import partition_days, process_alive
from pi_platform.streaming.state import LOCK_FILE



def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_up_runs_the_daily_job_on_the_embedded_simulator(tmp_path: Path):
    lake = tmp_path / "lake"
    state = tmp_path / "stream"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PI_DELTA_ROOT": str(lake),
           "PI_STREAM_STATE_DIR": str(state)}
    env.pop("PI_WEBAPI_URL", None)
    cli = Path(sys.executable).with_name("pi-platform")
    result = subprocess.run(
        [str(cli), "up", "--exit-after-run", "--tags", "20", "--partition", "2024-03-02...2024-03-03",
         "--port", str(_free_port()), "--simulator-port", str(_free_port())],
        env=env, capture_output=True, text=True, timeout=420,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "runs: ['SUCCESS']" in result.stdout  # one run for the range: single-run backfill policy
    for table in DAILY_ASSETS:
        assert DeltaTable(str(lake / table)).to_pyarrow_table().num_rows > 0, table
    values = DeltaTable(str(lake / "recorded_values")).to_pyarrow_table(columns=["name", "event_date"])
    assert {str(d) for d in values.column("event_date").unique().to_pylist()} == {"2024-03-02", "2024-03-03"}
    assert len(values.column("name").unique()) >= 20
    # The stream sensor started a collector while the run went on; `up` stops it on the way out.
    pid = int((state / LOCK_FILE).read_text())
    assert not process_alive(pid)


def test_partition_spec_forms():
    assert partition_days("2024-02-28...2024-03-01") == ["2024-02-28", "2024-02-29", "2024-03-01"]
    assert partition_days("2024-03-03") == ["2024-03-03"]
    assert len(partition_days(None)) == 1
    with pytest.raises(PlatformError, match="use YYYY-MM-DD or YYYY-MM-DD...YYYY-MM-DD"):
        partition_days("03/03/2024")
    with pytest.raises(PlatformError, match="ends before it starts"):
        partition_days("2024-03-03...2024-03-01")
