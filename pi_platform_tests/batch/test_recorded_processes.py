"""Reading in reader processes (`extract_recorded(..., processes=N)`, the asset's `processes`) stores exactly what
the one-process read stores: the plant's values, the same quarantine, one commit; a reader's failure is the
caller's one-line error and leaves no process behind."""

import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta

import dagster as dg
import pytest

from pi_platform.batch import recorded_processes
from pi_platform.batch.recorded import extract_recorded
from pi_platform.batch.window import DayWindow
from pi_platform.client import PIWebAPIConfig
from pi_platform.client.errors import ConnectError
from pi_platform.storage import DeltaStore, read_quarantine
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY, NOW, Runner

WINDOW = DayWindow(DAY, DAY + timedelta(days=1))


@pytest.fixture
def tiny_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test-sized tag list use several processes (the real minimum keeps small reads in-process)."""
    monkeypatch.setattr(recorded_processes, "_MIN_TAGS_PER_PROCESS", 1)


def _stored(store: DeltaStore):
    rows = store.read_range("recorded_values", "event_date", WINDOW.first, WINDOW.end)
    return sort_values(rows.select(VALUE_SCHEMA.names).cast(VALUE_SCHEMA))


def test_processes_store_the_same_rows_as_one_process(make_simulator, tmp_path, tiny_parts):
    simulator = make_simulator(n_tags=20, now=NOW, edge_tags=True)
    config = PIWebAPIConfig(url=simulator.base_url, max_requests_per_second=None)
    web_ids = [p.web_id for p in simulator.plant.points]
    one, three = DeltaStore(str(tmp_path / "one")), DeltaStore(str(tmp_path / "three"))

    alone = extract_recorded(config, one, web_ids, WINDOW, run_id="one")
    spread = extract_recorded(config, three, web_ids, WINDOW, run_id="three", processes=3)

    stored = _stored(three)
    assert stored.equals(truth.recorded(simulator.plant, WINDOW.start_time, WINDOW.end_time))
    assert stored.equals(_stored(one)) and spread.rows == alone.rows == stored.num_rows
    assert spread.info.version == 0  # one commit, however many readers
    assert not multiprocessing.active_children()


def test_rejects_of_every_worker_reach_the_quarantine(make_simulator, tmp_path, tiny_parts):
    simulator = make_simulator(n_tags=12, now=NOW, edge_tags=False, faults={"value_error_rate": 0.002})
    config = PIWebAPIConfig(url=simulator.base_url, max_requests_per_second=None)
    store = DeltaStore(str(tmp_path / "lake"))
    web_ids = [p.web_id for p in simulator.plant.points]
    spread = extract_recorded(config, store, web_ids, WINDOW, processes=3)
    quarantined = read_quarantine(store, table_name="recorded_values", start=WINDOW.first, end=WINDOW.end)
    expected = truth.recorded(simulator.plant, WINDOW.start_time, WINDOW.end_time)
    assert quarantined.num_rows == spread.quarantined > 0
    workers = {i for i, part in enumerate(recorded_processes._parts(web_ids, 2))
               for w in quarantined["web_id"].to_pylist() if w in part}
    assert len(workers) > 1  # rejects made in different worker processes all arrived
    assert _stored(store).num_rows + quarantined.num_rows == expected.num_rows  # nothing lost, nothing doubled


def test_a_workers_error_is_the_callers_one_line_error(tmp_path, tiny_parts):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    config = PIWebAPIConfig(url=f"http://127.0.0.1:{dead}/piwebapi", max_retries=0, max_requests_per_second=None)
    store = DeltaStore(str(tmp_path / "lake"))
    with pytest.raises(ConnectError) as raised:
        extract_recorded(config, store, [f"P{i}" for i in range(4)], WINDOW, processes=2)
    assert f"127.0.0.1:{dead}" in str(raised.value) and "\n" not in str(raised.value)
    assert not store.exists("recorded_values")
    assert not multiprocessing.active_children()


def test_a_reader_process_imports_the_client_alone():
    """What a reader process imports (its target's module): no pandas, pandera or deltalake, whose ~75 MB each
    reader would carry for nothing (validation and the commit stay in the calling process)."""
    probe = ("import sys, pi_platform.batch.recorded_processes; "
             "print(','.join(sorted({'pandas', 'pandera', 'deltalake', 'dagster'} & set(sys.modules))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_recorded_values_steps_read_with_reader_processes_from_run_config(make_simulator, tmp_path, tiny_parts,
                                                                          monkeypatch: pytest.MonkeyPatch):
    """The asset's `processes` reaches each shard step, whose readers store the plant's day exactly."""
    simulator = make_simulator(n_tags=8, now=NOW, edge_tags=True)
    started: list[int] = []
    enter = recorded_processes._Readers.__enter__

    def counted(self):
        started.append(len(self._jobs))
        return enter(self)

    monkeypatch.setattr(recorded_processes._Readers, "__enter__", counted)
    with dg.instance_for_test() as instance:
        runner = Runner(simulator, tmp_path / "lake", instance)
        config = {"ops": {"recorded_values": {"config": {"shards": 2, "processes": 3}}}}
        result = runner.materialize(["recorded_values"], run_config=config)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    assert started == [2, 2]  # each of the two shard steps read with two reader processes
    assert _stored(runner.store).equals(truth.recorded(simulator.plant, WINDOW.start_time, WINDOW.end_time))
    assert not multiprocessing.active_children()


def test_a_reader_killed_mid_read_is_a_one_line_error_and_nothing_is_committed(make_simulator, tmp_path, tiny_parts,
                                                                              monkeypatch: pytest.MonkeyPatch):
    """kill -9 of the readers once the first chunk has arrived (pages of 500 values: many chunks, and a reader may
    run at most `_IN_FLIGHT` ahead, so it is still reading): the caller's error names what happened, the table is
    not created, and no process is left."""
    simulator = make_simulator(n_tags=12, now=NOW, edge_tags=False)
    config = PIWebAPIConfig(url=simulator.base_url, max_requests_per_second=None, page_size=500, max_url_length=400)
    receive = recorded_processes._Readers._receive
    killed: list[int] = []

    def kill_after_first_chunk(self, connection):
        chunk = receive(self, connection)
        if not killed:
            for worker in self._workers.values():
                os.kill(worker.pid, signal.SIGKILL)
                killed.append(worker.pid)
        return chunk

    monkeypatch.setattr(recorded_processes._Readers, "_receive", kill_after_first_chunk)
    store = DeltaStore(str(tmp_path / "lake"))
    with pytest.raises(recorded_processes.ReaderProcessError) as raised:
        extract_recorded(config, store, [p.web_id for p in simulator.plant.points], WINDOW, processes=3)
    assert len(killed) == 2
    assert "exited (status -9)" in str(raised.value) and "\n" not in str(raised.value)
    assert not store.exists("recorded_values")
    assert not multiprocessing.active_children()


def test_retries_in_reader_processes_are_logged_by_the_caller(make_simulator, tmp_path, tiny_parts, caplog):
    """A 5xx storm (a fifth of the requests) while two readers read: every retry they make is a warning in the
    calling process (where Dagster and the benchmark look), never only in a child's stderr, and the day is exact."""
    simulator = make_simulator(n_tags=12, now=NOW, edge_tags=False, faults={"error_rate": 0.2})
    config = PIWebAPIConfig(url=simulator.base_url, max_requests_per_second=None, page_size=1000, max_url_length=400,
                            max_retries=8, backoff_base_s=0.01, backoff_max_s=0.05)
    store = DeltaStore(str(tmp_path / "lake"))
    with caplog.at_level(logging.WARNING, logger="pi_platform.client"):
        extract_recorded(config, store, [p.web_id for p in simulator.plant.points], WINDOW, processes=3)
    retries = [r for r in caplog.records if r.name == "pi_platform.client" and "retry" in r.getMessage()]
    assert retries and all(r.levelno == logging.WARNING for r in retries)
    assert {r.processName for r in retries} == {"pi-recorded-reader"}  # made there, handled here
    assert _stored(store).equals(truth.recorded(simulator.plant, WINDOW.start_time, WINDOW.end_time))
    assert not multiprocessing.active_children()
