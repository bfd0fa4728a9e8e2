"""SIGINT and SIGHUP stop `up` as cleanly as SIGTERM (test_up.py), and a crashed `up` is recovered from.

These signal `up` while its children start (simulator up, Dagster starting), the costliest moment to leave
orphans and the cheapest to test: no backfill is launched (`--no-run`)."""

import signal
from pathlib import Path

import pytest

from pi_platform_tests.launcher.helpers import Up, group_alive, isolated_env, listening

STARTED = "starting Dagster"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_signal_stops_every_child(sig: signal.Signals, tmp_path: Path):
    up = Up(["--no-run", "--tags", "5"], isolated_env(tmp_path), tmp_path / "up.log")
    up.wait_for(STARTED, timeout_s=60)
    groups = up.groups(tmp_path / "home")
    up.process.send_signal(sig)
    assert up.finish() == 0
    assert f"{sig.name} received: stopping" in up.output and "Traceback" not in up.output
    assert up.output.rstrip().endswith("stopped; nothing left running")
    assert not any(group_alive(g) for g in groups)
    assert not listening(up.ui_port) and not listening(up.sim_port)


def test_a_crashed_instance_is_recovered(tmp_path: Path):
    env = isolated_env(tmp_path)
    crashed = Up(["--no-run", "--tags", "5"], env, tmp_path / "crashed.log")
    crashed.wait_for(STARTED, timeout_s=60)
    orphans = crashed.groups(tmp_path / "home")
    crashed.process.kill()  # no shutdown: its children live on, its lock is released by the kernel
    crashed.finish()
    assert any(group_alive(g) for g in orphans)

    up = Up(["--no-run", "--tags", "5"], env, tmp_path / "up.log")
    up.wait_for(STARTED, timeout_s=60)
    assert f"a previous `pi-platform up` (pid {crashed.process.pid}) ended without stopping" in up.output
    assert not any(group_alive(g) for g in orphans)
    up.process.send_signal(signal.SIGTERM)
    assert up.finish() == 0
