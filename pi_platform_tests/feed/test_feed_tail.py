"""`pi-platform tail` as a real subprocess: JSON lines of the replay since --since for the chosen tags, then rows as
they commit; `--no-follow` exits after the replay; a bad --since is one line on stderr and exit status 2."""

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
from conftest import T0, since_rows, wait_for

from pi_platform import cli

SINCE = T0 + timedelta(minutes=3)


def _tail(lake, *args: str) -> list[str]:
    return [sys.executable, "-m", "pi_platform.cli", "tail", "--delta-root", str(lake.store.root), *args]


def _keys(rows: pa.Table) -> list[tuple]:
    return sorted((r["web_id"], r["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), r["position"], r["digital_state"])
                  for r in rows.to_pylist())


def _selected(lake, names: list[str]) -> pa.Table:
    rows = since_rows(lake.table(), SINCE)
    return rows.filter(pc.is_in(rows["name"], pa.array(names)))


def test_tail_prints_replay_then_follows_new_commits(lake):
    lake.commit_window(T0, T0 + timedelta(minutes=10))
    names = ["EDGE.DigitalSystem", "EDGE.SystemRun"]
    process = subprocess.Popen(
        _tail(lake, "--since", SINCE.isoformat(), "--tag", names[0], "--tag", names[1], "--format", "jsonl",
              "--poll-interval", "0.1"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line) for line in process.stdout), daemon=True)
    reader.start()
    try:
        first = _selected(lake, names)
        wait_for(lambda: len(lines) >= first.num_rows, "the replay on stdout", 60)
        lake.commit_window(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
        every = _selected(lake, names)
        assert every.num_rows > first.num_rows > 10
        wait_for(lambda: len(lines) >= every.num_rows, "the new commit on stdout", 60)
    finally:
        process.terminate()
        process.wait(30)
        reader.join(10)
    got = sorted((r["web_id"], r["timestamp"], r["position"], r["digital_state"]) for r in lines)
    assert got == _keys(every)


def test_tail_no_follow_prints_the_replay_as_a_table(lake):
    lake.commit_window(T0, T0 + timedelta(minutes=5))
    done = subprocess.run(_tail(lake, "--since", SINCE.isoformat(), "--no-follow", "--tag", "EDGE.DigitalSystem"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    body = done.stdout.splitlines()[1:]
    truth = _selected(lake, ["EDGE.DigitalSystem"])
    assert len(body) == truth.num_rows > 0
    states = [s for s in truth["digital_state"].to_pylist() if s]
    assert states and all(any(s in line for line in body) for s in states)  # digital states shown by name



def test_tail_bad_since_is_one_line(lake, capsys):
    lake.commit_window(T0, T0 + timedelta(minutes=1))
    assert cli.main(_tail(lake, "--since", "next-tuesday")[3:]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pi-platform tail: --since:") and "next-tuesday" in err
