"""Reading in worker processes (`extract_recorded(..., processes=N)`) stores exactly what the one-process read
stores: the plant's values, the same quarantine, one commit; a worker's failure is the caller's one-line error
and leaves no process behind."""

import multiprocessing
import socket
from datetime import timedelta

import pytest

from pi_platform.batch import recorded_processes
from pi_platform.batch.recorded import extract_recorded
from pi_platform.batch.window import DayWindow
from pi_platform.client import PIWebAPIConfig
from pi_platform.client.errors import ConnectError
from pi_platform.storage import DeltaStore, read_quarantine
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY, NOW

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
    workers = {i for i, part in enumerate(recorded_processes._parts(web_ids, 3)) for w in quarantined["web_id"].to_pylist()
               if w in part}
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
